//! The `ringtail` binary: `ringtail serve` runs a broker; `ringtail tune` and `ringtail iotune`
//! check the machine and measure its disk.

// Layers, bottom up (ARCHITECTURE.md; `tests/layers.rs` fails on an import that points up or
// closes a circle): foundations (config, limits, logging, metrics, errors), the shard
// runtime, the broker (services per shard), the Kafka API handlers, the server; the
// command-line tools sit beside the server.
mod broker;
mod cluster_cli;
mod config;
mod config_keys;
mod errors;
mod group_cli;
mod kafka;
mod limits;
mod logging;
mod metadata_cli;
mod metrics;
mod runtime;
mod server;

use clap::{Parser, Subcommand};

/// Ringtail: a thread-per-core, Kafka-compatible message broker.
#[derive(Debug, Parser)]
#[command(name = "ringtail", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker. With no options: a single node on 127.0.0.1:9092 with data in
    /// ./ringtail-data, one shard per core.
    Serve(Box<config::ServeArgs>),
    /// Check (and with --apply, change) the system settings that matter for a thread-per-core
    /// io_uring broker: CPU governor, IRQ affinity, disk scheduler, limits, swappiness, ...
    Tune {
        /// The broker's data directory (its disk and file system are checked).
        #[arg(long, default_value = "ringtail-data")]
        data_dir: std::path::PathBuf,
        /// Change what can be changed; prints each change and how to undo it.
        #[arg(long)]
        apply: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Shards the broker will run (default: one per online CPU).
        #[arg(long)]
        shards: Option<usize>,
        /// The broker's free-space watermarks (as `ringtail serve` takes them), reported beside
        /// the data directory's free space.
        #[arg(long, env = "RINGTAIL_DISK_FREE_LOW_BYTES")]
        disk_free_low_bytes: Option<u64>,
        #[arg(long, env = "RINGTAIL_DISK_FREE_LOW_PERCENT")]
        disk_free_low_percent: Option<u8>,
        #[arg(long, env = "RINGTAIL_DISK_FREE_HIGH_BYTES")]
        disk_free_high_bytes: Option<u64>,
        #[arg(long, env = "RINGTAIL_DISK_FREE_HIGH_PERCENT")]
        disk_free_high_percent: Option<u8>,
    },
    /// Consumer groups of a running broker: `list`, or `describe GROUP` (members,
    /// assignments, committed offsets and lag).
    Group {
        #[command(subcommand)]
        command: group_cli::GroupCommand,
    },
    /// A running cluster: `status` (nodes, roles, the active controller, fenced brokers,
    /// metadata progress, partitions led per broker).
    Cluster {
        #[command(subcommand)]
        command: cluster_cli::ClusterCommand,
    },
    /// Print a data directory's metadata as JSON: the node's identity, every topic with its
    /// id, configs and partitions (replicas, leader, epoch, ISR), and the shard owning each of
    /// this node's replicas. Reads the files only; the broker may be running.
    Metadata {
        #[arg(long, default_value = "ringtail-data")]
        data_dir: std::path::PathBuf,
    },
    /// Measure the data disk (O_DIRECT sequential bandwidth by block size and queue depth,
    /// 4 KiB write + fdatasync latency), write DATA_DIR/io-properties.toml, and print the fio
    /// commands that repeat the measurement.
    Iotune {
        #[arg(long, default_value = "ringtail-data")]
        data_dir: std::path::PathBuf,
        /// Time budget of the measurement, in seconds (2 to 600): each of the 12 bandwidth
        /// points gets SECONDS/18 (a fifth warm-up, the rest measured), the fdatasync test
        /// SECONDS/6. Use 90 or more for 5 s points that fio can confirm.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
}

/// How long the end of the process waits for queued log lines to be written.
const LOG_FLUSH_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(2);

fn main() {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => *args,
        Command::Tune {
            data_dir,
            apply,
            json,
            shards,
            disk_free_low_bytes,
            disk_free_low_percent,
            disk_free_high_bytes,
            disk_free_high_percent,
        } => {
            let defaults = ringtail_log::SpaceConfig::default();
            let space = ringtail_tuning::SpaceWatermarks {
                low_bytes: disk_free_low_bytes.unwrap_or(defaults.low_bytes),
                low_percent: disk_free_low_percent.unwrap_or(defaults.low_percent),
                high_bytes: disk_free_high_bytes.unwrap_or(defaults.high_bytes),
                high_percent: disk_free_high_percent.unwrap_or(defaults.high_percent),
            };
            let options = ringtail_tuning::TuneOptions { data_dir, apply, json, shards, space };
            match ringtail_tuning::tune(options) {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("ringtail tune: {e}");
                    std::process::exit(2);
                }
            }
        }
        Command::Group { command } => match group_cli::run(command) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("ringtail group: {e:#}");
                std::process::exit(1);
            }
        },
        Command::Cluster { command } => match cluster_cli::run(command) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("ringtail cluster: {e:#}");
                std::process::exit(1);
            }
        },
        Command::Metadata { data_dir } => match metadata_cli::print(&data_dir) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("ringtail metadata: {e:#}");
                std::process::exit(1);
            }
        },
        Command::Iotune { data_dir, seconds } => {
            match ringtail_tuning::iotune(ringtail_tuning::IotuneOptions { data_dir, seconds }) {
                Ok(_) => std::process::exit(0),
                Err(e) => {
                    eprintln!("ringtail iotune: {e}");
                    std::process::exit(2);
                }
            }
        }
    };
    let config = match config::BrokerConfig::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringtail: {e}");
            std::process::exit(2);
        }
    };
    logging::init(&config.log_filter, config.log_format);
    let mut config = config;
    if let Some(p) = ringtail_tuning::read_properties(&config.data_dir) {
        // What `ringtail iotune` found the disk needs: the smallest write that reaches its
        // bandwidth, and the queue depth that does. Bounded to sane values whatever the file says.
        let write_bytes = (p.write_block_bytes as usize).clamp(64 << 10, 8 << 20);
        let writes_in_flight = (p.flush_concurrency as usize).clamp(1, 64);
        tracing::info!(write_bytes, writes_in_flight, "flush shape from io-properties.toml (ringtail iotune)");
        config.write_shape = Some((write_bytes, writes_in_flight));
    }
    if config.log.zero_copy_reads {
        // A kernel without what the zero-copy path needs serves every cold read by copying.
        if let Err(missing) = runtime::splice::probe() {
            tracing::warn!("zero-copy reads off: {missing}; cold reads are copied");
            config.log.zero_copy_reads = false;
        }
    }
    for warning in ringtail_tuning::startup_warnings(&config.data_dir, config.shards) {
        tracing::warn!("system setting: {warning} (see `ringtail tune`)");
    }
    let result = server::serve(config);
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    logging::flush(LOG_FLUSH_AT_EXIT);
    if result.is_err() {
        std::process::exit(1);
    }
}
