//! The broker's log output. Lines are formatted on the thread that logs them and handed to one
//! writer thread over a bounded queue, so a shard never blocks on stderr (a full pipe, a slow
//! terminal): when the queue is full the line is dropped and counted. Text lines carry colour
//! only when stderr is a terminal; `--log-format json` writes one JSON object per line for log
//! shippers. Lines a client can cause per connection go through a [`LineLimiter`].

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::limits::{LOG_LINES_PER_SECOND_MAX, LOG_LINES_QUEUED_MAX};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Lines dropped because the writer thread was behind, since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines left out by the per-connection line limiters, since start.
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
/// Sends one formatted line to the writer thread; set once by [`init`].
static QUEUE: OnceLock<flume::Sender<Vec<u8>>> = OnceLock::new();
/// Answers once the writer thread has written everything queued before the request.
static FLUSHED: OnceLock<flume::Receiver<()>> = OnceLock::new();

pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

pub fn suppressed_lines() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// One log line being formatted; it is queued whole when the formatter drops it.
struct LineWriter {
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        let sent = QUEUE.get().is_some_and(|q| q.try_send(line).is_ok());
        if !sent {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the writer thread and installs the global subscriber. `filter` is an env-filter
/// directive (RUST_LOG, when set, takes precedence).
pub fn init(filter: &str, format: LogFormat) {
    let (tx, rx) = flume::bounded::<Vec<u8>>(LOG_LINES_QUEUED_MAX);
    let (flushed_tx, flushed_rx) = flume::bounded(1);
    let _ = QUEUE.set(tx);
    let _ = FLUSHED.set(flushed_rx);
    let spawned = std::thread::Builder::new().name("log-writer".into()).spawn(move || {
        // Stderr is locked per line, never for the thread's life: a lock held for ever would
        // block any other thread's `eprintln!` (or a library's write to stderr) for good.
        let stderr = std::io::stderr();
        while let Ok(line) = rx.recv() {
            // An empty line is a flush request: everything before it has been written.
            if line.is_empty() {
                let _ = stderr.lock().flush();
                let _ = flushed_tx.try_send(());
                continue;
            }
            let _ = stderr.lock().write_all(&line);
        }
    });
    if let Err(e) = spawned {
        eprintln!("ringtail: cannot start the log writer thread ({e}); logging to stderr directly");
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let make_writer = || LineWriter { line: Vec::with_capacity(256) };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(make_writer);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// Waits (up to `timeout`) until every line queued so far is written; for the end of the process.
pub fn flush(timeout: Duration) {
    let (Some(queue), Some(flushed)) = (QUEUE.get(), FLUSHED.get()) else { return };
    while flushed.try_recv().is_ok() {}
    if queue.send_timeout(Vec::new(), timeout).is_ok() {
        let _ = flushed.recv_timeout(timeout);
    }
}

/// Lets through at most [`LOG_LINES_PER_SECOND_MAX`] lines a second of one kind that clients
/// can cause (a connection refused or closed, a produce refused), and counts the rest. One per
/// shard and kind; owned by its shard.
#[derive(Debug)]
pub struct LineLimiter {
    window_start: Cell<Instant>,
    lines: Cell<u32>,
    suppressed: Cell<u64>,
}

impl Default for LineLimiter {
    fn default() -> Self {
        LineLimiter { window_start: Cell::new(Instant::now()), lines: Cell::new(0), suppressed: Cell::new(0) }
    }
}

impl LineLimiter {
    /// Whether the next line may be logged. When a new second begins after lines were left
    /// out, the first line of it says how many.
    pub fn allow(&self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start.get()) >= Duration::from_secs(1) {
            self.window_start.set(now);
            self.lines.set(0);
            let suppressed = self.suppressed.replace(0);
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "log lines left out in the last second (at most {LOG_LINES_PER_SECOND_MAX} a second of each kind)"
                );
            }
        }
        if self.lines.get() >= LOG_LINES_PER_SECOND_MAX {
            self.suppressed.set(self.suppressed.get() + 1);
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.lines.set(self.lines.get() + 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limiter_lets_through_its_quota_per_second_and_counts_the_rest() {
        let limiter = LineLimiter::default();
        let allowed = (0..LOG_LINES_PER_SECOND_MAX * 3).filter(|_| limiter.allow()).count();
        assert_eq!(allowed, LOG_LINES_PER_SECOND_MAX as usize);
        assert_eq!(limiter.suppressed.get(), u64::from(LOG_LINES_PER_SECOND_MAX) * 2);
        limiter.window_start.set(Instant::now() - Duration::from_secs(2));
        assert!(limiter.allow());
        assert_eq!(limiter.suppressed.get(), 0);
    }

    #[test]
    fn a_line_without_a_queue_is_counted_as_dropped() {
        let before = dropped_lines();
        drop(LineWriter { line: b"x\n".to_vec() });
        // No test installs the queue, so the line has nowhere to go.
        assert_eq!(dropped_lines(), before + 1);
    }
}
