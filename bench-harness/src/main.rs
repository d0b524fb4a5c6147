//! `ringtail-bench`: OpenMessaging-style workloads against any Kafka-compatible broker, driven
//! by its own lean client (one pinned glommio executor per core given). Prints a line every few
//! seconds while it runs, a summary at the end, and writes `result.json` and `report.html`.

mod batch;
mod charts;
mod client;
mod compression;
mod driver;
mod legacy;
mod stats;
mod workload;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use driver::{RunOptions, RunResult, Target};
use workload::{Compression, Keys, Payload, Workload};

#[derive(Parser)]
#[command(name = "ringtail-bench", version, about = "Benchmark Kafka-compatible brokers: throughput and latency")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a workload against one broker, or the same workload against several (`--target`).
    Run(Box<RunArgs>),
    /// Lists the preset workloads.
    Presets,
}

#[derive(Args)]
struct RunArgs {
    /// Broker to drive (host:port). Use `--target NAME=HOST:PORT` (repeatable) to compare several.
    #[arg(long)]
    bootstrap: Option<String>,
    /// A target to compare, `name=host:port`; repeat for each. Runs one after the other.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// A preset workload (see `ringtail-bench presets`).
    #[arg(long)]
    preset: Option<String>,
    /// A workload TOML file (fields as in `ringtail-bench presets --toml`); flags override it.
    #[arg(long)]
    workload: Option<PathBuf>,
    /// The broker's process id, for its CPU time per GB in the summary: `PID` with one target,
    /// `NAME=PID` for each of several (repeat the flag).
    #[arg(long = "broker-pid")]
    broker_pids: Vec<String>,
    /// Cores to run the client on, e.g. `0,1` (default: core 0).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Directory for result.json and report.html (default bench-results/<workload>-<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds between progress lines (default 5).
    #[arg(long, default_value_t = 5)]
    print_every_s: u64,
    #[command(flatten)]
    overrides: Overrides,
}

/// Workload settings as flags; each overrides the preset or file.
#[derive(Args, Default)]
struct Overrides {
    #[arg(long)]
    topics: Option<u32>,
    #[arg(long)]
    partitions: Option<u32>,
    /// Message size in bytes (at least 24).
    #[arg(long)]
    message_size: Option<usize>,
    #[arg(long)]
    producers: Option<u32>,
    #[arg(long)]
    consumers: Option<u32>,
    /// Messages per second over all producers; 0 for unlimited.
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long)]
    batch_bytes: Option<usize>,
    #[arg(long)]
    linger_ms: Option<u64>,
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// all, 1 or 0.
    #[arg(long)]
    acks: Option<String>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long)]
    compression: Option<String>,
    /// text (log lines, compressible as logs are) or random (incompressible).
    #[arg(long)]
    payload: Option<String>,
    /// none, random or round-robin.
    #[arg(long)]
    keys: Option<String>,
    #[arg(long)]
    duration_s: Option<u64>,
    #[arg(long)]
    warmup_s: Option<u64>,
    /// With --rate 0 and consumers: producers pause while more than this many MB are
    /// published and not yet consumed (default 64; 0: never, the producers run free).
    #[arg(long)]
    backlog_max_mb: Option<u64>,
}

impl Overrides {
    fn apply(&self, w: &mut Workload) -> Result<()> {
        macro_rules! set {
            ($($field:ident => $target:ident),*) => { $( if let Some(v) = self.$field { w.$target = v; } )* };
        }
        set!(topics => topics, partitions => partitions_per_topic, message_size => message_size, producers => producers,
             consumers => consumers, rate => producer_rate, batch_bytes => batch_bytes, linger_ms => linger_ms,
             max_in_flight => max_in_flight, duration_s => duration_s, warmup_s => warmup_s,
             backlog_max_mb => backlog_max_mb);
        if let Some(a) = &self.acks {
            w.acks = match a.as_str() {
                "all" | "-1" => -1,
                "1" => 1,
                "0" => 0,
                other => bail!("--acks {other}: use all, 1 or 0"),
            };
        }
        if let Some(c) = &self.compression {
            w.compression = Compression::parse(c)
                .ok_or_else(|| anyhow::anyhow!("--compression {c}: use none, gzip, snappy, lz4 or zstd"))?;
        }
        if let Some(p) = &self.payload {
            w.payload = Payload::parse(p).ok_or_else(|| anyhow::anyhow!("--payload {p}: use text or random"))?;
        }
        if let Some(k) = &self.keys {
            w.keys = match k.as_str() {
                "none" => Keys::None,
                "random" => Keys::Random,
                "round-robin" => Keys::RoundRobin,
                other => bail!("--keys {other}: use none, random or round-robin"),
            };
        }
        Ok(())
    }
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("ringtail-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Presets => {
            for (w, about) in workload::presets() {
                println!("{:<42} {about}", w.name);
            }
            println!("\nAs TOML (any subset of these fields makes a workload file):\n");
            print!("{}", toml::to_string(&Workload::default())?);
            Ok(())
        }
        Command::Run(args) => run_workload(*args),
    }
}

fn run_workload(args: RunArgs) -> Result<()> {
    let mut w = match (&args.preset, &args.workload) {
        (Some(_), Some(_)) => bail!("give --preset or --workload, not both"),
        (Some(name), None) => workload::preset(name)
            .with_context(|| format!("no preset `{name}`; `ringtail-bench presets` lists them"))?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Workload::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        (None, None) => Workload::default(),
    };
    args.overrides.apply(&mut w)?;
    w.validate()?;
    let mut targets = Vec::new();
    if let Some(b) = &args.bootstrap {
        targets.push(Target { name: b.clone(), bootstrap: b.clone(), broker_pid: None });
    }
    for t in &args.targets {
        let (name, bootstrap) = t.split_once('=').with_context(|| format!("--target {t}: use name=host:port"))?;
        targets.push(Target { name: name.into(), bootstrap: bootstrap.into(), broker_pid: None });
    }
    if targets.is_empty() {
        bail!("give --bootstrap HOST:PORT or one or more --target NAME=HOST:PORT");
    }
    for p in &args.broker_pids {
        let (name, pid) = match p.split_once('=') {
            Some((name, pid)) => (Some(name), pid),
            None => (None, p.as_str()),
        };
        let pid: u32 = pid.parse().with_context(|| format!("--broker-pid {p}: use PID or NAME=PID"))?;
        if stats::process_cpu_s(pid).is_none() {
            bail!("--broker-pid {p}: no process {pid} to read /proc/{pid}/stat of");
        }
        let target = match name {
            Some(name) => targets.iter_mut().find(|t| t.name == name),
            None if targets.len() == 1 => targets.first_mut(),
            None => bail!("--broker-pid {p}: with several targets, use NAME=PID"),
        };
        target.with_context(|| format!("--broker-pid {p}: no such target"))?.broker_pid = Some(pid);
    }
    let cores = if args.cores.is_empty() { vec![0] } else { args.cores.clone() };
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(c) = cores.iter().find(|&&c| c >= available) {
        bail!("--cores: core {c} does not exist (this machine has {available})");
    }
    let options = RunOptions {
        cores,
        print_every: (args.print_every_s as f64 / driver::INTERVAL.as_secs_f64()).round().max(1.0) as u64,
        topic_prefix: "bench".into(),
    };
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("bench-results/{}-{stamp}", w.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    println!(
        "workload {}: {} topic(s) x {} partitions, {} B, {} producer(s), {} consumer(s), rate {}, batch {} B, linger {} ms, \
         acks {}, keys {:?}, {} s + {} s warm-up; client on cores {:?}",
        w.name,
        w.topics,
        w.partitions_per_topic,
        w.message_size,
        w.producers,
        w.consumers,
        if w.producer_rate == 0 { "unlimited".to_string() } else { format!("{} msg/s", w.producer_rate) },
        w.batch_bytes,
        w.linger_ms,
        if w.acks == -1 { "all".to_string() } else { w.acks.to_string() },
        w.keys,
        w.duration_s,
        w.warmup_s,
        options.cores
    );
    let mut results: Vec<RunResult> = Vec::new();
    for t in &targets {
        println!("== {} ({})", t.name, t.bootstrap);
        let r = driver::run(&w, t, &options).with_context(|| format!("running against {}", t.name))?;
        print_summary(&r);
        results.push(r);
    }
    if results.len() > 1 {
        print_comparison(&results);
    }
    let json = serde_json::to_string_pretty(&results)?;
    std::fs::write(out.join("result.json"), json)?;
    std::fs::write(out.join("report.html"), charts::html(&results))?;
    println!("wrote {}/result.json and {}/report.html", out.display(), out.display());
    let failed: u64 = results.iter().map(|r| r.summary.publish_errors).sum();
    if failed > 0 {
        bail!("{failed} messages were not acknowledged (see the summary)");
    }
    Ok(())
}

fn per_gb(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn print_summary(r: &RunResult) {
    let s = &r.summary;
    println!("-- summary for {} over {:.0} s after warm-up", r.target.name, s.measured_s);
    println!(
        "publish  {:>12.0} msg/s {:>9.1} MB/s    consume {:>12.0} msg/s {:>9.1} MB/s",
        s.publish_rate, s.publish_mbps, s.consume_rate, s.consume_mbps
    );
    if r.workload.compression != Compression::None && s.publish_wire_mbps > 0.0 {
        println!(
            "publish  {:>9.1} MB/s of {} batches on the wire (messages / wire bytes: {:.2})",
            s.publish_wire_mbps,
            r.workload.compression.name(),
            s.publish_mbps / s.publish_wire_mbps
        );
    }
    println!(
        "messages published {} (errors {}), consumed {}, backlog at end {}",
        s.published, s.publish_errors, s.consumed, s.backlog_at_end
    );
    if let Some(cpu) = &s.broker_cpu {
        println!(
            "broker CPU {:.2} s while measuring ({:.0}% of a core): {} s per GB published, {} s per GB consumed, {} s per GB moved",
            cpu.seconds,
            cpu.seconds / s.measured_s * 100.0,
            per_gb(cpu.per_gb_published),
            per_gb(cpu.per_gb_consumed),
            per_gb(cpu.per_gb_moved)
        );
    }
    if s.steal_max_ms > 0 {
        println!(
            "CPU time stolen by the hypervisor while measuring: {:.1}% (worst interval {} ms); latency tails include such stalls",
            s.cpu_steal_percent, s.steal_max_ms
        );
    }
    println!("latency ms     p50      p75      p95      p99    p99.9   p99.99      max");
    for (name, p) in [("publish", &s.publish_latency), ("end-to-end", &s.end_to_end_latency)] {
        println!(
            "{name:<11}{:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            p.p50, p.p75, p.p95, p.p99, p.p99_9, p.p99_99, p.max
        );
    }
}

fn print_comparison(results: &[RunResult]) {
    let base = &results[0];
    println!("\n== comparison (ratio to {})", base.target.name);
    print!("{:<26}", "");
    for r in results {
        print!("{:>22}", r.target.name);
    }
    println!();
    type Pick = fn(&RunResult) -> f64;
    let rows: [(&str, Pick); 12] = [
        ("publish msg/s", |r| r.summary.publish_rate),
        ("publish MB/s", |r| r.summary.publish_mbps),
        ("publish wire MB/s", |r| r.summary.publish_wire_mbps),
        ("consume MB/s", |r| r.summary.consume_mbps),
        ("publish p50 ms", |r| r.summary.publish_latency.p50),
        ("publish p99 ms", |r| r.summary.publish_latency.p99),
        ("publish p99.9 ms", |r| r.summary.publish_latency.p99_9),
        ("publish max ms", |r| r.summary.publish_latency.max),
        ("end-to-end p50 ms", |r| r.summary.end_to_end_latency.p50),
        ("end-to-end p99 ms", |r| r.summary.end_to_end_latency.p99),
        ("end-to-end p99.9 ms", |r| r.summary.end_to_end_latency.p99_9),
        ("CPU steal %", |r| r.summary.cpu_steal_percent),
    ];
    for (name, pick) in rows {
        print!("{name:<26}");
        let b = pick(base);
        for r in results {
            let v = pick(r);
            if std::ptr::eq(r, base) {
                print!("{v:>22.2}");
            } else if b > 0.0 {
                print!("{:>22}", format!("{v:.2} ({:.2}x)", v / b));
            } else {
                print!("{v:>22.2}");
            }
        }
        println!();
    }
}
