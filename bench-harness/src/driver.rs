//! Runs a workload against one target: topics created, then one glommio executor per core
//! given (pinned), each running its share of the producers and consumers on its own
//! connections; every second each core sends its measurements to the main thread, which
//! merges, prints and keeps them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use ringtail_net::client::fetch::{FetchPartition, FetchRequest, FetchTopic};
use ringtail_net::client::produce::{ProducePartition, ProduceRequest, ProduceTopic};
use ringtail_net::client::ClientApi;
use serde::Serialize;

use crate::batch::{self, BatchBuilder};
use crate::client::{self, Connection};
use crate::compression::{Compression, PayloadPool};
use crate::stats::{self, Percentiles, Stats};
use crate::workload::{Keys, Workload};

/// Measurements are taken per interval of this length (and charts drawn from them).
pub const INTERVAL: Duration = Duration::from_secs(1);
/// After the producers stop, how long consumers may take to catch up.
const DRAIN: Duration = Duration::from_secs(15);
/// CPU shares of the producers' and the consumers' task queues on a core (see `worker`).
const PRODUCER_SHARES: usize = 100;
const CONSUMER_SHARES: usize = 1000;
/// How soon a consumer with a response to read preempts the producers.
const CONSUMER_LATENCY: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub bootstrap: String,
    /// The broker's process, whose CPU time the summary reports when given.
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub cores: Vec<usize>,
    /// Print a progress line every this many intervals.
    pub print_every: u64,
    /// Prefix of the topics created.
    pub topic_prefix: String,
}

/// One interval, merged over cores.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalRow {
    /// Seconds since the producers started, at the interval's end.
    pub t_s: f64,
    pub warmup: bool,
    pub publish_rate: f64,
    pub publish_mbps: f64,
    pub consume_rate: f64,
    pub consume_mbps: f64,
    /// Messages acknowledged and not yet consumed, at the interval's end.
    pub backlog: i64,
    pub publish_errors: u64,
    pub publish_latency: Percentiles,
    pub end_to_end_latency: Percentiles,
    /// CPU time stolen by the hypervisor in this interval, ms summed over every CPU.
    pub steal_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub measured_s: f64,
    pub publish_rate: f64,
    /// Message bytes (keys and headers not counted, uncompressed).
    pub publish_mbps: f64,
    /// Batch bytes as sent to the broker: compressed, with the batch and record framing.
    pub publish_wire_mbps: f64,
    pub consume_rate: f64,
    pub consume_mbps: f64,
    /// Over the whole run, warm-up included.
    pub published: u64,
    pub consumed: u64,
    pub publish_errors: u64,
    pub backlog_at_end: i64,
    pub publish_latency: Percentiles,
    pub end_to_end_latency: Percentiles,
    /// Share of the machine's CPU time stolen by the hypervisor while measuring, % (0 on
    /// bare metal; a latency tail on a VM with steal may be the host's, not the broker's).
    pub cpu_steal_percent: f64,
    /// The most stolen in one interval, ms summed over every CPU.
    pub steal_max_ms: u64,
    /// The broker's CPU time while measuring, when its pid was given.
    pub broker_cpu: Option<BrokerCpu>,
}

/// A broker's CPU time (user + system, every thread) over the measured period, and per GB of
/// message bytes published, consumed, and both together.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerCpu {
    pub seconds: f64,
    pub per_gb_published: Option<f64>,
    pub per_gb_consumed: Option<f64>,
    pub per_gb_moved: Option<f64>,
}

impl BrokerCpu {
    fn new(seconds: f64, published_bytes: u64, consumed_bytes: u64) -> BrokerCpu {
        let per = |bytes: u64| (bytes > 0).then(|| seconds / (bytes as f64 / 1e9));
        BrokerCpu {
            seconds,
            per_gb_published: per(published_bytes),
            per_gb_consumed: per(consumed_bytes),
            per_gb_moved: per(published_bytes + consumed_bytes),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub target: Target,
    pub workload: Workload,
    pub cores: Vec<usize>,
    pub started_unix_s: u64,
    pub topics: Vec<String>,
    pub summary: Summary,
    pub intervals: Vec<IntervalRow>,
    /// (percentile, ms) points of the measured period's latency distributions.
    pub publish_latency_curve: Vec<(f64, f64)>,
    pub end_to_end_latency_curve: Vec<(f64, f64)>,
}

/// What the cores share.
struct Shared {
    epoch: Instant,
    start_ns: AtomicU64,
    stop_consumers: AtomicBool,
    barrier: Barrier,
    /// Messages acknowledged and consumed so far, over every core (the backlog bound).
    published: AtomicU64,
    consumed: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

struct Report {
    worker: usize,
    index: u64,
    stats: Stats,
    producers_running: bool,
    last: bool,
    error: Option<String>,
}

/// A producer's or consumer's place in the run.
#[derive(Clone)]
struct Plan {
    workload: Workload,
    bootstrap: String,
    topics: Vec<String>,
    /// Every (topic index, partition).
    partitions: Vec<(usize, i32)>,
    /// Where message values after their header come from (shared, read-only).
    payload: Arc<PayloadPool>,
}

fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:08x}", (nanos as u64 ^ (nanos >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32)
}

pub fn run(workload: &Workload, target: &Target, options: &RunOptions) -> Result<RunResult> {
    workload.validate()?;
    let cores = if options.cores.is_empty() { vec![0] } else { options.cores.clone() };
    let suffix = random_suffix();
    let topics: Vec<String> =
        (0..workload.topics).map(|i| format!("{}-{}-{suffix}-{i}", options.topic_prefix, workload.name)).collect();
    // Topics first, from an executor on the first core.
    {
        let (bootstrap, topics, partitions) = (target.bootstrap.clone(), topics.clone(), workload.partitions_per_topic);
        LocalExecutorBuilder::new(Placement::Fixed(cores[0]))
            .name("bench-setup")
            .spawn(move || async move {
                let conn = Connection::connect(&bootstrap, "ringtail-bench-setup").await?;
                client::create_topics(&conn, &topics, partitions).await
            })
            .map_err(|e| anyhow!("cannot start an executor on core {}: {e}", cores[0]))?
            .join()
            .map_err(|e| anyhow!("setup executor: {e:?}"))?
            .with_context(|| format!("setting up topics on {}", target.bootstrap))?;
    }
    let plan = Plan {
        workload: workload.clone(),
        bootstrap: target.bootstrap.clone(),
        topics: topics.clone(),
        partitions: (0..topics.len())
            .flat_map(|t| (0..workload.partitions_per_topic as i32).map(move |p| (t, p)))
            .collect(),
        payload: Arc::new(PayloadPool::new(
            workload.payload,
            workload.message_size - batch::PAYLOAD_HEADER_BYTES,
            0x5EED,
        )),
    };
    let workers = cores.len();
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        start_ns: AtomicU64::new(0),
        stop_consumers: AtomicBool::new(false),
        barrier: Barrier::new(workers + 1),
        published: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
    });
    let (reports_tx, reports_rx) = flume::unbounded::<Report>();
    let mut handles = Vec::new();
    for (w, &core) in cores.iter().enumerate() {
        let producers: Vec<u32> = (0..workload.producers).filter(|i| *i as usize % workers == w).collect();
        let consumers: Vec<u32> =
            (0..workload.consumers).filter(|j| (workload.producers + j) as usize % workers == w).collect();
        let (plan, shared, reports) = (plan.clone(), shared.clone(), reports_tx.clone());
        let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("bench-{core}"))
            .spawn(move || async move { worker(w, plan, shared, reports, producers, consumers).await })
            .map_err(|e| anyhow!("cannot start an executor on core {core}: {e}"))?;
        handles.push(handle);
    }
    drop(reports_tx);
    // Every core has connected and positioned its consumers at the log end: go.
    shared.barrier.wait();
    shared.start_ns.store(shared.now_ns() + 20_000_000, Ordering::SeqCst);
    let started_unix_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let result = collect(workload, &shared, &reports_rx, workers, options, target);
    shared.stop_consumers.store(true, Ordering::SeqCst);
    for h in handles {
        let _ = h.join();
    }
    let (summary, intervals, publish_curve, e2e_curve) = result?;
    Ok(RunResult {
        target: target.clone(),
        workload: workload.clone(),
        cores,
        started_unix_s,
        topics,
        summary,
        intervals,
        publish_latency_curve: publish_curve,
        end_to_end_latency_curve: e2e_curve,
    })
}

type Collected = (Summary, Vec<IntervalRow>, Vec<(f64, f64)>, Vec<(f64, f64)>);

/// The main thread's side: merges the cores' reports interval by interval, prints progress,
/// decides when the consumers may stop, and sums up.
fn collect(
    workload: &Workload,
    shared: &Shared,
    reports: &flume::Receiver<Report>,
    workers: usize,
    options: &RunOptions,
    target: &Target,
) -> Result<Collected> {
    let interval_s = INTERVAL.as_secs_f64();
    let warmup_intervals = (workload.warmup_s as f64 / interval_s).round() as u64;
    let measured_intervals = (workload.duration_s as f64 / interval_s).round() as u64;
    let mut pending: BTreeMap<u64, (usize, Stats)> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut measured = Stats::default();
    let mut total = Stats::default();
    let mut printed = Stats::default();
    // The last interval each finished core reported.
    let mut finished_at: Vec<Option<u64>> = vec![None; workers];
    let mut producing = vec![true; workers];
    let mut drain_deadline: Option<Instant> = None;
    let mut error = None;
    // The broker's CPU seconds when measuring starts and ends (read as those intervals complete).
    let cpu_now = || target.broker_pid.and_then(stats::process_cpu_s);
    let mut cpu_start = if warmup_intervals == 0 { cpu_now() } else { None };
    let mut cpu_end = None;
    while !(finished_at.iter().all(Option::is_some) && pending.is_empty()) {
        let report = match reports.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => r,
            Err(flume::RecvTimeoutError::Timeout) => {
                if drain_deadline.is_some_and(|d| Instant::now() > d) {
                    shared.stop_consumers.store(true, Ordering::SeqCst);
                }
                continue;
            }
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(e) = &report.error {
            error.get_or_insert_with(|| e.clone());
            shared.stop_consumers.store(true, Ordering::SeqCst);
        }
        let entry = pending.entry(report.index).or_insert_with(|| (0, Stats::default()));
        entry.0 += 1;
        entry.1.merge(&report.stats);
        producing[report.worker] = report.producers_running;
        if report.last {
            finished_at[report.worker] = Some(report.index);
        }
        // Complete intervals, in order: every core reported it or finished before it.
        while let Some((&index, &(n, _))) = pending.first_key_value() {
            let gone = finished_at.iter().filter(|f| f.is_some_and(|last| last < index)).count();
            if n + gone < workers {
                break;
            }
            let (_, (_, stats)) = pending.pop_first().expect("not empty");
            if index + 1 == warmup_intervals {
                cpu_start = cpu_now();
            }
            if index + 1 == warmup_intervals + measured_intervals {
                cpu_end = cpu_now();
            }
            total.merge(&stats);
            let warmup = index < warmup_intervals;
            if !warmup && index < warmup_intervals + measured_intervals {
                measured.merge(&stats);
            } else if !warmup {
                // Draining: consumers catching up on messages sent in the measured period.
                measured.end_to_end_latency.add(&stats.end_to_end_latency).expect("same bounds");
            }
            let row = IntervalRow {
                t_s: (index + 1) as f64 * interval_s,
                warmup,
                publish_rate: stats.published as f64 / interval_s,
                publish_mbps: stats.published_bytes as f64 / interval_s / 1e6,
                consume_rate: stats.consumed as f64 / interval_s,
                consume_mbps: stats.consumed_bytes as f64 / interval_s / 1e6,
                backlog: total.published as i64 - total.consumed as i64,
                publish_errors: stats.publish_errors,
                publish_latency: Percentiles::of(&stats.publish_latency),
                end_to_end_latency: Percentiles::of(&stats.end_to_end_latency),
                steal_ms: stats.steal_ms,
            };
            printed.merge(&stats);
            if (index + 1) % options.print_every.max(1) == 0 {
                print_progress(&target.name, &row, &printed, options.print_every.max(1) as f64 * interval_s);
                printed = Stats::default();
            }
            rows.push(row);
        }
        if producing.iter().all(|p| !p) && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + DRAIN);
        }
        if drain_deadline.is_some() && (workload.consumers == 0 || total.consumed >= total.published) {
            shared.stop_consumers.store(true, Ordering::SeqCst);
        }
    }
    if let Some(e) = error {
        return Err(anyhow!("{}: {e}", target.bootstrap));
    }
    let measured_s = measured_intervals as f64 * interval_s;
    let summary = Summary {
        measured_s,
        publish_rate: measured.published as f64 / measured_s,
        publish_mbps: measured.published_bytes as f64 / measured_s / 1e6,
        publish_wire_mbps: measured.published_wire_bytes as f64 / measured_s / 1e6,
        consume_rate: measured.consumed as f64 / measured_s,
        consume_mbps: measured.consumed_bytes as f64 / measured_s / 1e6,
        published: total.published,
        consumed: total.consumed,
        publish_errors: total.publish_errors,
        backlog_at_end: total.published as i64 - total.consumed as i64,
        publish_latency: Percentiles::of(&measured.publish_latency),
        end_to_end_latency: Percentiles::of(&measured.end_to_end_latency),
        cpu_steal_percent: measured.steal_ms as f64
            / (measured_s * 1000.0 * stats::steal_ms_now().map_or(1, |(_, cpus)| cpus) as f64)
            * 100.0,
        steal_max_ms: rows
            .iter()
            .skip(warmup_intervals as usize)
            .take(measured_intervals as usize)
            .map(|r| r.steal_ms)
            .max()
            .unwrap_or(0),
        broker_cpu: match (cpu_start, cpu_end) {
            (Some(a), Some(b)) => Some(BrokerCpu::new(b - a, measured.published_bytes, measured.consumed_bytes)),
            _ => None,
        },
    };
    Ok((summary, rows, Percentiles::curve(&measured.publish_latency), Percentiles::curve(&measured.end_to_end_latency)))
}

fn print_progress(target: &str, row: &IntervalRow, window: &Stats, window_s: f64) {
    let p = Percentiles::of(&window.publish_latency);
    let e = Percentiles::of(&window.end_to_end_latency);
    println!(
        "[{target}] {:>6.1} s{} | pub {:>9.0} msg/s {:>7.1} MB/s | cons {:>9.0} msg/s {:>7.1} MB/s | backlog {:>8} | \
         pub ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} | e2e ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        row.t_s,
        if row.warmup { " (warm-up)" } else { "" },
        window.published as f64 / window_s,
        window.published_bytes as f64 / window_s / 1e6,
        window.consumed as f64 / window_s,
        window.consumed_bytes as f64 / window_s / 1e6,
        row.backlog,
        p.p50,
        p.p99,
        p.p99_9,
        p.max,
        e.p50,
        e.p99,
        e.p99_9,
        e.max,
    );
    if window.steal_ms > 0 {
        println!("[{target}] {:>6.1} s | CPU stolen by the hypervisor: {} ms", row.t_s, window.steal_ms);
    }
}

/// One core: connects its producers and consumers, waits for the start, runs them, and
/// reports every interval.
async fn worker(
    me: usize,
    plan: Plan,
    shared: Arc<Shared>,
    reports: flume::Sender<Report>,
    producers: Vec<u32>,
    consumers: Vec<u32>,
) -> Result<()> {
    let stats = Rc::new(RefCell::new(Stats::default()));
    // Producers and consumers share this core but not its time: consumers run in a queue with
    // ten times the producers' shares (and a short preemption deadline), so an unlimited
    // producer never starves the consumers of the same process. A consumer that falls behind
    // gets the CPU it needs to catch up, and the publish rate settles where consumers keep up
    // (what "max rate" means with consumers). Connections are opened inside their queue,
    // so each one's reader task runs there too.
    let ex = glommio::executor();
    let producer_queue = ex.create_task_queue(Shares::Static(PRODUCER_SHARES), Latency::NotImportant, "producers");
    let consumer_queue =
        ex.create_task_queue(Shares::Static(CONSUMER_SHARES), Latency::Matters(CONSUMER_LATENCY), "consumers");
    let producers_ready = {
        let plan = plan.clone();
        glommio::spawn_local_into(
            async move {
                let mut ready = Vec::new();
                for &i in &producers {
                    let conn = Connection::connect(&plan.bootstrap, &format!("ringtail-bench-producer-{i}")).await?;
                    let version = conn.produce_version()?;
                    ready.push((i, conn, version));
                }
                Ok::<_, anyhow::Error>(ready)
            },
            producer_queue,
        )
        .map_err(|e| anyhow!("{e}"))?
    };
    let consumers_ready = {
        let plan = plan.clone();
        glommio::spawn_local_into(
            async move {
                let mut ready = Vec::new();
                for &j in &consumers {
                    let conn = Connection::connect(&plan.bootstrap, &format!("ringtail-bench-consumer-{j}")).await?;
                    let version = conn.fetch_version()?;
                    let mine: Vec<(String, i32)> = plan
                        .partitions
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| *k % plan.workload.consumers as usize == j as usize)
                        .map(|(_, (t, p))| (plan.topics[*t].clone(), *p))
                        .collect();
                    // The topics are new; a broker without ListOffsets v1 starts them at 0.
                    let offsets = if conn.is_legacy() {
                        mine.iter().map(|tp| (tp.clone(), 0)).collect()
                    } else {
                        client::latest_offsets(&conn, &mine).await?
                    };
                    ready.push((conn, version, offsets));
                }
                Ok::<_, anyhow::Error>(ready)
            },
            consumer_queue,
        )
        .map_err(|e| anyhow!("{e}"))?
    };
    let setup = async { Ok::<_, anyhow::Error>((producers_ready.await?, consumers_ready.await?)) };
    let setup = setup.await;
    // Everyone meets here, set up or not (the main thread waits for every core).
    shared.barrier.wait();
    let (ready_producers, ready_consumers) = match setup {
        Ok(x) => x,
        Err(e) => {
            let _ = reports.send(Report {
                worker: me,
                index: 0,
                stats: Stats::default(),
                producers_running: false,
                last: true,
                error: Some(format!("{e:#}")),
            });
            return Err(e);
        }
    };
    // The main thread sets the start once every core has passed the barrier.
    let start_ns = loop {
        match shared.start_ns.load(Ordering::SeqCst) {
            0 => glommio::timer::sleep(Duration::from_millis(1)).await,
            t => break t,
        }
    };
    let end_ns = start_ns + (plan.workload.warmup_s + plan.workload.duration_s) * 1_000_000_000;
    let running = Rc::new(std::cell::Cell::new(ready_producers.len()));
    let errors: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    for (i, conn, version) in ready_producers {
        let (plan, shared, stats, running, errors) =
            (plan.clone(), shared.clone(), stats.clone(), running.clone(), errors.clone());
        glommio::spawn_local_into(
            async move {
                if let Err(e) = producer(&plan, &shared, &stats, i, &conn, version, start_ns, end_ns).await {
                    errors.borrow_mut().get_or_insert(format!("producer {i}: {e:#}"));
                }
                running.set(running.get() - 1);
            },
            producer_queue,
        )
        .map_err(|e| anyhow!("{e}"))?
        .detach();
    }
    let consuming = Rc::new(std::cell::Cell::new(ready_consumers.len()));
    for (conn, version, offsets) in ready_consumers {
        let (plan, shared, stats, consuming, errors) =
            (plan.clone(), shared.clone(), stats.clone(), consuming.clone(), errors.clone());
        glommio::spawn_local_into(
            async move {
                if let Err(e) = consumer(&plan, &shared, &stats, &conn, version, offsets).await {
                    errors.borrow_mut().get_or_insert(format!("consumer: {e:#}"));
                }
                consuming.set(consuming.get() - 1);
            },
            consumer_queue,
        )
        .map_err(|e| anyhow!("{e}"))?
        .detach();
    }
    // Report every interval, at start + k * INTERVAL. The first core also reads the machine's
    // steal time (reading /proc/stat is a memory read by the kernel, once a second).
    let interval_ns = INTERVAL.as_nanos() as u64;
    let mut index = 0u64;
    let steal_ms = || stats::steal_ms_now().map(|(ms, _)| ms);
    let mut steal_before = if me == 0 { steal_ms() } else { None };
    loop {
        let due = start_ns + (index + 1) * interval_ns;
        let now = shared.now_ns();
        if due > now {
            glommio::timer::sleep(Duration::from_nanos(due - now)).await;
        }
        let error = errors.borrow_mut().take();
        let done = running.get() == 0 && (consuming.get() == 0 || shared.stop_consumers.load(Ordering::SeqCst));
        let last = done || error.is_some();
        let mut s = std::mem::take(&mut *stats.borrow_mut());
        if let Some(before) = steal_before {
            let now = steal_ms().unwrap_or(before);
            s.steal_ms = now.saturating_sub(before);
            steal_before = Some(now);
        }
        let report = Report { worker: me, index, stats: s, producers_running: running.get() > 0, last, error };
        if reports.send(report).is_err() || last {
            break;
        }
        index += 1;
    }
    // Let in-flight work notice the stop before the executor ends.
    shared.stop_consumers.store(true, Ordering::SeqCst);
    while consuming.get() > 0 {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// A small xorshift for keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Ready {
    partition: usize,
    bytes: Bytes,
    due_ns: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
async fn producer(
    plan: &Plan,
    shared: &Arc<Shared>,
    stats: &Rc<RefCell<Stats>>,
    index: u32,
    conn: &Rc<Connection>,
    version: i16,
    start_ns: u64,
    end_ns: u64,
) -> Result<()> {
    let w = &plan.workload;
    let partitions = plan.partitions.len();
    let permits = Rc::new(glommio::sync::Semaphore::new(u64::from(w.max_in_flight)));
    let filler_len = w.message_size - batch::PAYLOAD_HEADER_BYTES;
    if conn.is_legacy() && w.compression != Compression::None {
        return Err(anyhow!(
            "compression {} needs a broker that takes record batches (Kafka 0.11 or later); this one answered as pre-0.10",
            w.compression.name()
        ));
    }
    if w.compression == Compression::Zstd && version < 7 {
        return Err(anyhow!(
            "compression zstd needs Produce v7 (Kafka 2.1 or later); this broker offers Produce up to v{version}"
        ));
    }
    // Batches are sent before their uncompressed records reach the batch size, with room for
    // a compressor's worst case on incompressible data, so no batch passes the broker's limit.
    let batch_limit =
        if w.compression == Compression::None { w.batch_bytes } else { w.batch_bytes - w.batch_bytes / 64 };
    let rate = w.producer_rate as f64 / f64::from(w.producers);
    let interval_ns = if rate > 0.0 { (1e9 / rate).max(1.0) } else { 0.0 };
    let linger_ns = w.linger_ms * 1_000_000;
    let mut open: HashMap<usize, BatchBuilder> = HashMap::new();
    let mut sticky = (index as usize * 7919) % partitions;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(index) + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut sequence = 0u64;
    let mut next_due = start_ns as f64;
    // (topic, partition) by partition index, to match responses to batches.
    let names: Rc<Vec<(String, i32)>> =
        Rc::new(plan.partitions.iter().map(|(t, p)| (plan.topics[*t].clone(), *p)).collect());
    // Wait for the start.
    let now = shared.now_ns();
    if start_ns > now {
        glommio::timer::sleep(Duration::from_nanos(start_ns - now)).await;
    }
    // An unlimited producer's lead over the consumers, in messages (0: no bound).
    let backlog_max =
        if rate > 0.0 || w.consumers == 0 { 0 } else { (w.backlog_max_mb * 1_000_000).div_ceil(w.message_size as u64) };
    loop {
        let mut now = shared.now_ns();
        while backlog_max > 0
            && now < end_ns
            && shared.published.load(Ordering::Relaxed).saturating_sub(shared.consumed.load(Ordering::Relaxed))
                > backlog_max
        {
            glommio::timer::sleep(Duration::from_micros(500)).await;
            now = shared.now_ns();
        }
        if now >= end_ns {
            break;
        }
        // 1. Messages due by now (at most a batch's worth at a time when unlimited).
        let mut full: Vec<usize> = Vec::new();
        let mut made = 0usize;
        loop {
            let due = if rate > 0.0 {
                if next_due > now as f64 || made >= 100_000 {
                    break;
                }
                next_due as u64
            } else {
                if !full.is_empty() || made >= 100_000 {
                    break;
                }
                now
            };
            let (partition, key) = match w.keys {
                Keys::None => (sticky, None),
                Keys::Random => {
                    let topic = (sequence as usize) % plan.topics.len();
                    let key = rng.next().to_be_bytes();
                    let p = batch::partition_for_key(&key, w.partitions_per_topic) as usize;
                    (topic * w.partitions_per_topic as usize + p, Some(key))
                }
                Keys::RoundRobin => {
                    let p = (sequence as usize + index as usize) % partitions;
                    (p, Some((p as u64).to_be_bytes()))
                }
            };
            // A full batch goes out before anything more is added to it (after a stall, the
            // messages due since could otherwise overfill batches past the broker's limit).
            if full.contains(&partition) {
                break;
            }
            let legacy = conn.is_legacy();
            let b =
                open.entry(partition).or_insert_with(|| BatchBuilder::new(w.batch_bytes, now, legacy, w.compression));
            if rate > 0.0 {
                next_due += interval_ns;
            }
            let timestamp_ms = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH))
                .map_or(0, |d| d.as_millis() as i64);
            b.push(
                key.as_ref().map(|k| &k[..]),
                batch::payload_header(due, index, sequence),
                plan.payload.slice(rng.next(), filler_len),
                timestamp_ms,
                due,
            );
            sequence += 1;
            made += 1;
            if b.len() + w.message_size + 32 > batch_limit {
                full.push(partition);
                if w.keys == Keys::None {
                    sticky = (sticky + 1) % partitions;
                }
            }
        }
        // 2. Batches to send: full ones, lingered ones.
        let now = shared.now_ns();
        let mut ready: Vec<Ready> = Vec::new();
        let lingered: Vec<usize> = open
            .iter()
            .filter(|(p, b)| b.count() > 0 && (full.contains(p) || b.opened_ns + linger_ns <= now))
            .map(|(p, _)| *p)
            .collect();
        for p in lingered {
            let b = open.remove(&p).expect("listed");
            if w.keys == Keys::None && p == sticky {
                sticky = (sticky + 1) % partitions;
            }
            let (bytes, due_ns) = b.finish()?;
            ready.push(Ready { partition: p, bytes, due_ns });
        }
        let sent_any = !ready.is_empty();
        if sent_any {
            let permit = permits.acquire_static_permit(1).await.map_err(|_| anyhow!("closed"))?;
            let request = ProduceCall::new(plan, &ready, conn);
            let (conn, stats, shared, names) = (conn.clone(), stats.clone(), shared.clone(), names.clone());
            let (acks, message_size) = (w.acks, w.message_size as u64);
            if acks == 0 {
                request.send_only(&conn, version).await?;
                let mut s = stats.borrow_mut();
                for r in &ready {
                    s.count_published(r.due_ns.len() as u64, message_size, r.bytes.len() as u64);
                }
                drop(permit);
            } else {
                glommio::spawn_local(async move {
                    let _permit = permit;
                    let answer = request.call(&conn, version).await;
                    let acked_ns = shared.now_ns();
                    settle(answer, &ready, &names, &stats, &shared, message_size, acked_ns);
                })
                .detach();
            }
        }
        // 3. Wait for the next message or linger deadline.
        if rate > 0.0 {
            let mut wake = next_due as u64;
            if let Some(oldest) = open.values().map(|b| b.opened_ns + linger_ns).min() {
                wake = wake.min(oldest);
            }
            let now = shared.now_ns();
            if wake > now {
                glommio::timer::sleep(Duration::from_nanos(wake - now)).await;
            }
        } else if !sent_any {
            glommio::yield_if_needed().await;
        }
        // Let the consumers' queue in when its time has come (a no-op otherwise).
        glommio::yield_if_needed().await;
    }
    // Send what is left and wait for every answer.
    let rest: Vec<Ready> = open
        .drain()
        .filter(|(_, b)| b.count() > 0)
        .map(|(p, b)| {
            let (bytes, due_ns) = b.finish()?;
            Ok(Ready { partition: p, bytes, due_ns })
        })
        .collect::<Result<_>>()?;
    if !rest.is_empty() && w.acks != 0 {
        let answer = ProduceCall::new(plan, &rest, conn).call(conn, version).await;
        let acked_ns = shared.now_ns();
        settle(answer, &rest, &names, stats, shared, w.message_size as u64, acked_ns);
    }
    let _all = permits.acquire(u64::from(w.max_in_flight)).await;
    Ok(())
}

/// A Produce request in the broker's protocol: current, or v1 with message sets (`legacy.rs`).
enum ProduceCall {
    Current(ProduceRequest),
    Legacy(Bytes),
}

impl ProduceCall {
    fn new(plan: &Plan, ready: &[Ready], conn: &Connection) -> ProduceCall {
        if !conn.is_legacy() {
            return ProduceCall::Current(produce_request(plan, ready));
        }
        let mut by_topic: BTreeMap<usize, Vec<(i32, Bytes)>> = BTreeMap::new();
        for r in ready {
            let (topic, partition) = plan.partitions[r.partition];
            by_topic.entry(topic).or_default().push((partition, r.bytes.clone()));
        }
        let topics: Vec<(String, Vec<(i32, Bytes)>)> =
            by_topic.into_iter().map(|(t, parts)| (plan.topics[t].clone(), parts)).collect();
        ProduceCall::Legacy(crate::legacy::produce_v1(plan.workload.acks, 30_000, &topics))
    }

    /// The error code of every partition answered.
    async fn call(&self, conn: &Connection, version: i16) -> Result<HashMap<(String, i32), i16>> {
        match self {
            ProduceCall::Current(request) => {
                let resp = conn.call(version, request).await?;
                Ok(resp
                    .topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name;
                        t.partitions.into_iter().map(move |p| ((name.clone(), p.index), p.error_code))
                    })
                    .collect())
            }
            ProduceCall::Legacy(body) => {
                let resp = conn.call_raw(ClientApi::Produce, version, body, true).await?;
                Ok(crate::legacy::produce_v1_response(resp)?.into_iter().map(|(t, p, e)| ((t, p), e)).collect())
            }
        }
    }

    async fn send_only(&self, conn: &Connection, version: i16) -> Result<()> {
        match self {
            ProduceCall::Current(request) => conn.send_only(version, request).await,
            ProduceCall::Legacy(body) => conn.call_raw(ClientApi::Produce, version, body, false).await.map(drop),
        }
    }
}

fn produce_request(plan: &Plan, ready: &[Ready]) -> ProduceRequest {
    let mut by_topic: BTreeMap<usize, Vec<ProducePartition>> = BTreeMap::new();
    for r in ready {
        let (topic, partition) = plan.partitions[r.partition];
        by_topic.entry(topic).or_default().push(ProducePartition { index: partition, records: Some(r.bytes.clone()) });
    }
    ProduceRequest {
        transactional_id: None,
        acks: plan.workload.acks,
        timeout_ms: 30_000,
        topics: by_topic
            .into_iter()
            .map(|(t, partitions)| ProduceTopic { name: plan.topics[t].clone(), topic_id: [0; 16], partitions })
            .collect(),
    }
}

/// Counts a produce response: acknowledged messages and their latencies, or errors.
fn settle(
    answer: Result<HashMap<(String, i32), i16>>,
    ready: &[Ready],
    names: &[(String, i32)],
    stats: &Rc<RefCell<Stats>>,
    shared: &Shared,
    message_size: u64,
    acked_ns: u64,
) {
    let mut s = stats.borrow_mut();
    let errors = answer.unwrap_or_default();
    for r in ready {
        let n = r.due_ns.len() as u64;
        let ok = errors.get(&names[r.partition]) == Some(&0);
        if ok {
            s.count_published(n, message_size, r.bytes.len() as u64);
            shared.published.fetch_add(n, Ordering::Relaxed);
            for &due in &r.due_ns {
                stats::record(&mut s.publish_latency, acked_ns.saturating_sub(due) / 1000);
            }
        } else {
            s.publish_errors += n;
        }
    }
}

async fn consumer(
    plan: &Plan,
    shared: &Arc<Shared>,
    stats: &Rc<RefCell<Stats>>,
    conn: &Rc<Connection>,
    version: i16,
    mut offsets: HashMap<(String, i32), i64>,
) -> Result<()> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in offsets.keys() {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    if by_topic.is_empty() {
        return Ok(());
    }
    while !shared.stop_consumers.load(Ordering::SeqCst) {
        // (topic, partition, error code, records) per partition, in either protocol.
        let answered: Vec<(String, i32, i16, Option<Bytes>)> = if conn.is_legacy() {
            let topics: Vec<(String, Vec<(i32, i64)>)> = by_topic
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, offsets[&(t.clone(), *p)])).collect()))
                .collect();
            let body = crate::legacy::fetch_v1(100, 1, 8 << 20, &topics);
            let resp = conn.call_raw(ClientApi::Fetch, version, &body, true).await?;
            crate::legacy::fetch_v1_response(resp)?.into_iter().map(|(t, p, e, r)| (t, p, e, Some(r))).collect()
        } else {
            let request = fetch_request(&by_topic, &offsets);
            let resp = conn.call(version, &request).await?;
            resp.topics
                .into_iter()
                .flat_map(|t| {
                    let topic = t.name;
                    t.partitions.into_iter().map(move |p| (topic.clone(), p.partition_index, p.error_code, p.records))
                })
                .collect()
        };
        let now = shared.now_ns();
        let mut s = stats.borrow_mut();
        let s = &mut *s;
        for (topic, partition, error, records) in answered {
            if error != 0 {
                return Err(anyhow!("fetch {topic}[{partition}]: error {error}"));
            }
            let Some(records) = records else { continue };
            let on_message = |due: u64| stats::record(&mut s.end_to_end_latency, now.saturating_sub(due) / 1000);
            let fetched = if conn.is_legacy() {
                crate::legacy::walk(&records, on_message)
            } else {
                batch::walk(&records, on_message).with_context(|| format!("fetch {topic}[{partition}]"))?
            };
            s.consumed += fetched.records;
            shared.consumed.fetch_add(fetched.records, Ordering::Relaxed);
            s.consumed_bytes += fetched.records * plan.workload.message_size as u64;
            if let Some(next) = fetched.next_offset {
                offsets.insert((topic, partition), next);
            }
        }
    }
    Ok(())
}

fn fetch_request(by_topic: &BTreeMap<String, Vec<i32>>, offsets: &HashMap<(String, i32), i64>) -> FetchRequest {
    FetchRequest {
        replica_id: -1,
        replica_epoch: -1,
        cluster_id: None,
        max_wait_ms: 100,
        min_bytes: 1,
        max_bytes: 64 << 20,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics: by_topic
            .iter()
            .map(|(t, ps)| FetchTopic {
                name: t.clone(),
                topic_id: [0; 16],
                partitions: ps
                    .iter()
                    .map(|p| FetchPartition {
                        partition: *p,
                        current_leader_epoch: -1,
                        fetch_offset: offsets[&(t.clone(), *p)],
                        last_fetched_epoch: -1,
                        log_start_offset: -1,
                        partition_max_bytes: 8 << 20,
                    })
                    .collect(),
            })
            .collect(),
        forgotten_topics: Vec::new(),
        rack_id: String::new(),
    }
}
