//! The `ringtail` binary: `ringtail serve` runs a broker.

mod admin;
mod config;
mod handlers;
mod metadata;
mod server;
mod shard;

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
    Serve(config::ServeArgs),
}

fn main() {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    let config = match config::BrokerConfig::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringtail: {e}");
            std::process::exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = server::serve(config) {
        tracing::error!("{e:#}");
        std::process::exit(1);
    }
}
