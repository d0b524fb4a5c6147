//! `ringtail-sim`: runs Ringtail's partition log (the production code, on the simulated
//! runtime of `ringtail_log::platform::sim`) under seeds, and checks its invariants after every
//! step. A failing seed replays exactly with `scripts/sim --seed N`.
//!
//! Usage: `ringtail-sim [--seeds N] [--first S] [--seed S] [--verbose]`.

// The consumer group protocol's state machine and assignors: core's own files, std only.
#[allow(dead_code)]
#[path = "../../core/src/broker/group/consumer/assignor.rs"]
mod assignor;
mod groups;
#[allow(dead_code)]
#[path = "../../core/src/broker/group/consumer/machine.rs"]
mod machine;
mod model;
mod quorum;
mod replicas;
mod world;

use std::process::ExitCode;

struct Args {
    first: u64,
    seeds: u64,
    verbose: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { first: 1, seeds: 20, verbose: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} takes a number"))
        };
        match a.as_str() {
            "--seeds" => args.seeds = number("--seeds")?,
            "--first" => args.first = number("--first")?,
            "--seed" => {
                args.first = number("--seed")?;
                args.seeds = 1;
                args.verbose = true;
            }
            "--verbose" | "-v" => args.verbose = true,
            "--help" | "-h" => {
                return Err("usage: ringtail-sim [--seeds N] [--first S] [--seed S] [--verbose]".into());
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if cfg!(feature = "mutation") {
        println!("mutation enabled: sync appends are acknowledged before their fdatasync");
    }
    if cfg!(feature = "replica-mutation") {
        println!("mutation enabled: followers vouch for batches before they are durable");
    }
    let (mut passed, mut failed) = (0u64, 0u64);
    for seed in args.first..args.first + args.seeds {
        let verbose = args.verbose;
        // Each seed on a thread of its own: a panic (a failed assertion in the code under test)
        // is a failure of that seed, and no simulated state outlives it.
        let outcome = std::thread::Builder::new()
            .name(format!("seed-{seed}"))
            .spawn(move || {
                let partition = world::run_seed(seed, verbose)?;
                let quorum = quorum::run_seed(seed, verbose)?;
                // The log's own mutation is the partition world's to catch; under it the replica
                // world (built on the same log) only loses time.
                let replicas = match cfg!(feature = "mutation") {
                    true => "replicas: not run under the log mutation".to_string(),
                    false => replicas::run_seed(seed, verbose)?,
                };
                let groups = groups::run_seed(seed, verbose)?;
                Ok::<String, String>(format!("{partition}\n  {quorum}\n  {replicas}\n  {groups}"))
            })
            .expect("spawn seed thread")
            .join()
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Err(format!("panicked: {why}"))
            });
        match outcome {
            Ok(summary) => {
                passed += 1;
                if verbose {
                    println!("seed {seed}: ok ({summary})");
                }
            }
            Err(why) => {
                failed += 1;
                let replay = match (cfg!(feature = "mutation"), cfg!(feature = "replica-mutation")) {
                    (true, _) => "scripts/sim --mutation --seed",
                    (_, true) => "scripts/sim --replica-mutation --seed",
                    _ => "scripts/sim --seed",
                };
                println!("seed {seed}: FAILED: {why}\n  replay: {replay} {seed}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
