//! What a check found: a status, the observed state, why it matters, and how to fix it.

use serde::Serialize;
use std::fmt::Write as _;

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As a thread-per-core broker wants it.
    Ok,
    /// Costs throughput or latency; `fix` says what to do.
    Warn,
    /// Worth knowing; nothing to change.
    Info,
    /// Could not be determined (file missing, not Linux, no permission).
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Info => "info",
            Status::Unknown => "unknown",
        }
    }
}

/// One sysfs or procfs write: set `path` to `value`; undo by writing `old` back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Write {
    /// Absolute path on the checked machine (`/sys/block/vda/queue/nomerges`).
    pub path: String,
    /// The value to write.
    pub value: String,
    /// The value in effect before, which undoes the write.
    pub old: String,
}

impl Write {
    /// The shell command that undoes this write.
    pub fn undo_command(&self) -> String {
        format!("echo '{}' > {}", self.old, self.path)
    }

    /// The shell command that makes this write.
    pub fn apply_command(&self) -> String {
        format!("echo '{}' > {}", self.value, self.path)
    }
}

/// How to fix a finding. `--apply` makes the `writes`; a fix without writes is advice only
/// (a service to stop, a limit to raise in the service manager).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// What to do, in words a person can act on.
    pub description: String,
    /// The writes `--apply` makes, in order.
    pub writes: Vec<Write>,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier for automation (`cpu.governor`, `disk.vda.nomerges`).
    pub id: String,
    /// How it stands.
    pub status: Status,
    /// What was observed.
    pub found: String,
    /// Why it matters to a thread-per-core, io_uring broker.
    pub why: String,
    /// How to fix it, if it can be fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

impl Finding {
    /// A finding without a fix.
    pub fn new(id: impl Into<String>, status: Status, found: impl Into<String>, why: impl Into<String>) -> Finding {
        Finding { id: id.into(), status, found: found.into(), why: why.into(), fix: None }
    }

    /// The same finding with a fix attached.
    pub fn with_fix(mut self, description: impl Into<String>, writes: Vec<Write>) -> Finding {
        self.fix = Some(Fix { description: description.into(), writes });
        self
    }
}

/// Human-readable report: one line per finding, then why it matters and how to fix it.
pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(out, "[{:<7}] {}: {}", f.status.label(), f.id, f.found);
        if f.status != Status::Ok {
            let _ = writeln!(out, "          why: {}", f.why);
        }
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "          fix: {}", fix.description);
            for w in &fix.writes {
                let _ = writeln!(out, "               {}   (undo: {})", w.apply_command(), w.undo_command());
            }
        }
    }
    let warnings = findings.iter().filter(|f| f.status == Status::Warn).count();
    let _ = writeln!(out, "{} findings, {} warnings", findings.len(), warnings);
    out
}

/// Machine-readable report: `{"findings": [...], "warnings": N}`.
pub fn render_json(findings: &[Finding]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        findings: &'a [Finding],
        warnings: usize,
    }
    let warnings = findings.iter().filter(|f| f.status == Status::Warn).count();
    // Serializing plain strings and enums cannot fail.
    serde_json::to_string_pretty(&Report { findings, warnings }).unwrap_or_default()
}
