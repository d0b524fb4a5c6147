//! `ringtail-tuning`: system checks and tuners behind `ringtail tune` (what the machine
//! does that matters for a thread-per-core io_uring broker, and `--apply` to change it)
//! and `ringtail iotune` (measures the data disk and writes `io-properties.toml`).
//!
//! Every check reads the machine through [`System`], rooted at `/` for real and at a fake
//! `sys/`/`proc/` tree in tests.

pub mod block;
pub mod checks;
pub mod finding;
pub mod iotune;
pub mod system;

pub use checks::{Context, Environment, SpaceWatermarks};
pub use finding::{Finding, Fix, Status, Write};
pub use iotune::{iotune, read_properties, IoProperties, IotuneOptions, PROPERTIES_FILE_NAME};
pub use system::System;

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Errors at this crate's boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Output(#[source] std::io::Error),
    /// A measurement or the properties file failed.
    #[error("{what} `{path}`: {source}; check that the data directory exists and is writable")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Bad options.
    #[error("{0}")]
    Invalid(String),
}

/// Options of `ringtail tune`.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    /// The broker's data directory (need not exist yet).
    pub data_dir: PathBuf,
    /// Change what can be changed.
    pub apply: bool,
    /// Print JSON instead of text.
    pub json: bool,
    /// Shards the broker will run (shard `i` on CPU `i`); `None` means one per online CPU.
    pub shards: Option<usize>,
    /// The broker's free-space watermarks, reported beside the free space.
    pub space: SpaceWatermarks,
}

/// `ringtail tune`: checks the real machine, applies fixes if asked, prints the report to
/// stdout, and returns the process exit code: 0 if nothing is left to warn about, 1 if
/// warnings remain.
pub fn tune(options: TuneOptions) -> Result<i32, Error> {
    let findings = run(&System::real(), &options);
    let report = if options.json { finding::render_json(&findings) } else { finding::render_text(&findings) };
    let mut out = std::io::stdout().lock();
    out.write_all(report.as_bytes()).map_err(Error::Output)?;
    out.write_all(b"\n").map_err(Error::Output)?;
    Ok(if findings.iter().any(|f| f.status == Status::Warn) { 1 } else { 0 })
}

/// Runs the checks on `system` and, with `options.apply`, applies the fixes and re-checks.
/// The result lists the findings after any changes, followed by one `apply.*` finding per
/// write made (`Ok`, with the undo command) or refused (`Warn`, "could not apply: ...").
pub fn run(system: &System, options: &TuneOptions) -> Vec<Finding> {
    let mut ctx = Context::new(system.clone(), &options.data_dir, options.shards);
    ctx.space = options.space;
    let findings = checks::run_all(&ctx);
    if !options.apply {
        return findings;
    }
    let changes = apply(&ctx, &findings);
    let mut after = checks::run_all(&ctx);
    after.extend(changes);
    after
}

/// Makes the writes of every `Warn` finding's fix; never fails, a refused write becomes a finding.
pub fn apply(ctx: &Context, findings: &[Finding]) -> Vec<Finding> {
    let mut out = Vec::new();
    for finding in findings.iter().filter(|f| f.status == Status::Warn) {
        let Some(fix) = &finding.fix else { continue };
        for write in &fix.writes {
            let id = format!("apply.{}", finding.id);
            match ctx.system.write(&write.path, &write.value) {
                Ok(()) => out.push(
                    Finding::new(
                        id,
                        Status::Ok,
                        format!(
                            "changed {} from `{}` to `{}`; undo: {}",
                            write.path,
                            write.old,
                            write.value,
                            write.undo_command()
                        ),
                        "the change lasts until reboot; persist it with sysctl.d, a udev rule or tuned",
                    )
                    .with_fix(
                        "undo",
                        vec![Write { path: write.path.clone(), value: write.old.clone(), old: write.value.clone() }],
                    ),
                ),
                Err(e) => {
                    let why = ctx.environment.refusal_reason().unwrap_or_else(|| match e.kind() {
                        std::io::ErrorKind::PermissionDenied => "run `ringtail tune --apply` as root".to_string(),
                        _ => "the kernel refused the value; this device or kernel may not support it".to_string(),
                    });
                    out.push(Finding::new(
                        id,
                        Status::Warn,
                        format!("could not apply: {} to {}: {e}", write.value, write.path),
                        why,
                    ));
                }
            }
        }
    }
    out
}

/// One line per `Warn` finding on the real machine, for `ringtail serve` to log at start-up.
pub fn startup_warnings(data_dir: &Path, shards: usize) -> Vec<String> {
    let options = TuneOptions {
        data_dir: data_dir.to_path_buf(),
        apply: false,
        json: false,
        shards: Some(shards),
        space: SpaceWatermarks::default(),
    };
    warnings(&run(&System::real(), &options))
}

/// The `Warn` findings as one line each: `id: found (fix)`.
pub fn warnings(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.status == Status::Warn)
        .map(|f| match &f.fix {
            Some(fix) => format!("{}: {} (fix: {}; or run `ringtail tune --apply`)", f.id, f.found, fix.description),
            None => format!("{}: {}", f.id, f.found),
        })
        .collect()
}
