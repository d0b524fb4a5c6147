//! Append throughput of `ringtail-log` in sync and async durability, for 1 KiB records in
//! 16 KiB, 64 KiB and 1 MiB batches, next to a raw O_DIRECT sequential write of the same number
//! of bytes measured in the same run. Prints a table of MB/s and the ratio to raw.
//!
//! Usage: log-append --dir DIR [--total-mib N] [--producers N] [--cpu N] [--rounds N]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::OpenOptions;
use glommio::{LocalExecutorBuilder, Placement};
use ringtail_log::batch::build;
use ringtail_log::{Durability, Faults, Flusher, LogConfig, PartitionLog};

const RECORD_BYTES: usize = 1024;
const BATCH_SIZES: [usize; 3] = [16 << 10, 64 << 10, 1 << 20];
/// Raw writes are issued in this size, with `producers` in flight.
const RAW_WRITE_BYTES: usize = 1 << 20;
/// Async mode: stop appending while this many bytes wait to be written.
const ASYNC_UNFLUSHED_BYTES_MAX: u64 = 64 << 20;

struct Args {
    dir: PathBuf,
    total_bytes: u64,
    producers: usize,
    cpu: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { dir: PathBuf::new(), total_bytes: 1 << 30, producers: 8, cpu: 1, rounds: 1 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()?),
            "--total-mib" => args.total_bytes = value()?.parse::<u64>().map_err(|e| e.to_string())? << 20,
            "--producers" => args.producers = value()?.parse().map_err(|e: std::num::ParseIntError| e.to_string())?,
            "--cpu" => args.cpu = value()?.parse().map_err(|e: std::num::ParseIntError| e.to_string())?,
            "--rounds" => args.rounds = value()?.parse().map_err(|e: std::num::ParseIntError| e.to_string())?,
            other => return Err(format!("unknown flag {other}; usage: log-append --dir DIR [--total-mib N] [--producers N] [--cpu N] [--rounds N]")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("--dir DIR is required (a directory on the disk to measure)".into());
    }
    Ok(args)
}

fn make_batch(batch_bytes: usize) -> Bytes {
    let value = vec![b'r'; RECORD_BYTES];
    let values: Vec<&[u8]> = (0..batch_bytes / RECORD_BYTES).map(|_| value.as_slice()).collect();
    Bytes::from(build::batch(&values, 0))
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

/// Sequential O_DIRECT writes of `total` bytes, `depth` writes in flight, one fdatasync at the end.
async fn raw(dir: &Path, total: u64, depth: usize) -> Duration {
    let path = dir.join("raw.dat");
    let file = Rc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await
            .expect("create raw file"),
    );
    file.pre_allocate(total, false).await.expect("fallocate");
    let next = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let workers: Vec<_> = (0..depth)
        .map(|_| {
            let (file, next) = (file.clone(), next.clone());
            glommio::spawn_local(async move {
                loop {
                    let pos = next.get();
                    if pos >= total {
                        break;
                    }
                    next.set(pos + RAW_WRITE_BYTES as u64);
                    let mut buf = file.alloc_dma_buffer(RAW_WRITE_BYTES);
                    buf.as_bytes_mut().fill(b'r');
                    file.write_at(buf, pos).await.expect("raw write");
                }
            })
        })
        .collect();
    for w in workers {
        w.await;
    }
    file.fdatasync().await.expect("raw fdatasync");
    let elapsed = start.elapsed();
    drop(file);
    glommio::io::remove(&path).await.expect("remove raw file");
    elapsed
}

/// Appends `total` bytes of `batch` to a fresh log; returns the time until all of it is durable.
async fn append(dir: &Path, total: u64, batch: Bytes, durability: Durability, producers: usize) -> Duration {
    let log_dir = dir.join("log-0");
    let _ = std::fs::remove_dir_all(&log_dir);
    let config = LogConfig { durability, batch_bytes_max: 2 << 20, retention_age_ms_max: None, ..LogConfig::default() };
    let flusher = Flusher::new(Faults::default(), Duration::from_millis(10));
    let flusher_task = flusher.spawn();
    let log = PartitionLog::open(&log_dir, config, &flusher).await.expect("open log");
    let count = total / batch.len() as u64;
    let appended = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let last = match durability {
        Durability::Sync => {
            let tasks: Vec<_> = (0..producers)
                .map(|_| {
                    let (log, batch, appended) = (log.clone(), batch.clone(), appended.clone());
                    glommio::spawn_local(async move {
                        while appended.get() < count {
                            appended.set(appended.get() + 1);
                            let info = log.append(batch.clone(), 0, 0).expect("append");
                            log.wait_durable(info.last_offset).await.expect("durable");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            log.log_end_offset() - 1
        }
        Durability::Async => {
            let mut last: u64 = 0;
            // On backpressure wait for the older half of what waits, so the disk never idles.
            let offsets_per_batch = (batch.len() / RECORD_BYTES) as u64;
            let half_backlog = ASYNC_UNFLUSHED_BYTES_MAX / 2 / batch.len() as u64 * offsets_per_batch;
            for _ in 0..count {
                if log.unflushed_bytes() > ASYNC_UNFLUSHED_BYTES_MAX {
                    log.wait_written(last.saturating_sub(half_backlog)).await.expect("written");
                }
                last = log.append(batch.clone(), 0, 0).expect("append").last_offset;
            }
            log.flush(true, 0).await.expect("final flush");
            last
        }
    };
    log.wait_durable(last).await.expect("durable");
    let elapsed = start.elapsed();
    flusher.stop();
    flusher_task.await;
    drop(log);
    std::fs::remove_dir_all(&log_dir).expect("remove log dir");
    elapsed
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("log-append: {e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&args.dir).expect("create --dir");
    let Args { dir, total_bytes, producers, cpu, rounds } = args;
    let result = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .spawn(move || async move {
            ringtail_log::prime_direct_io(&dir).await.expect("probe direct I/O");
            println!(
                "log-append: {} MiB per run, 1 KiB records, {producers} sync producers, CPU {cpu}, dir {}",
                total_bytes >> 20,
                dir.display()
            );
            println!("{:>10} {:>6} {:>10} {:>10} {:>8}", "batch", "mode", "MB/s", "raw MB/s", "ratio");
            for round in 0..rounds {
                for &size in &BATCH_SIZES {
                    let batch = make_batch(size);
                    for durability in [Durability::Async, Durability::Sync] {
                        // Raw and log runs alternate so both see the same disk state.
                        let raw_time = raw(&dir, total_bytes, producers.min(4)).await;
                        let raw_rate = mb_per_s(total_bytes, raw_time);
                        let bytes = (total_bytes / batch.len() as u64) * batch.len() as u64;
                        let time = append(&dir, total_bytes, batch.clone(), durability, producers).await;
                        let rate = mb_per_s(bytes, time);
                        let mode = if durability == Durability::Sync { "sync" } else { "async" };
                        println!(
                            "{:>10} {:>6} {:>10.0} {:>10.0} {:>7.0}%{}",
                            format!("{} KiB", batch.len() >> 10),
                            mode,
                            rate,
                            raw_rate,
                            100.0 * rate / raw_rate,
                            if rounds > 1 { format!("  (round {})", round + 1) } else { String::new() }
                        );
                    }
                }
            }
        })
        .expect("start executor")
        .join();
    if result.is_err() {
        std::process::exit(1);
    }
}
