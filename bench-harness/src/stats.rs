//! Measurements: counters and HDR histograms (microseconds), kept per core and merged by the
//! main thread each reporting interval.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded, µs (longer ones are clamped to it).
const LATENCY_US_MAX: u64 = 300_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// What one core measured over one interval (or a whole run, once merged).
#[derive(Debug, Clone)]
pub struct Stats {
    pub published: u64,
    pub published_bytes: u64,
    /// Bytes of the acknowledged batches as sent (compressed, with batch and record framing).
    pub published_wire_bytes: u64,
    pub publish_errors: u64,
    pub consumed: u64,
    pub consumed_bytes: u64,
    /// Send (the time the message was due) to acknowledgement.
    pub publish_latency: Histogram<u64>,
    /// Send (due time) to receipt by a consumer.
    pub end_to_end_latency: Histogram<u64>,
    /// CPU time the hypervisor gave to others while this machine's CPUs wanted to run (steal,
    /// summed over every CPU), ms. Counted by one core only.
    pub steal_ms: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            published: 0,
            published_bytes: 0,
            published_wire_bytes: 0,
            publish_errors: 0,
            consumed: 0,
            consumed_bytes: 0,
            publish_latency: histogram(),
            end_to_end_latency: histogram(),
            steal_ms: 0,
        }
    }
}

pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.clamp(1, LATENCY_US_MAX));
}

impl Stats {
    /// A batch of `messages` of `message_size` bytes, `wire_bytes` as sent, was published.
    pub fn count_published(&mut self, messages: u64, message_size: u64, wire_bytes: u64) {
        self.published += messages;
        self.published_bytes += messages * message_size;
        self.published_wire_bytes += wire_bytes;
    }

    pub fn merge(&mut self, other: &Stats) {
        self.published += other.published;
        self.published_bytes += other.published_bytes;
        self.published_wire_bytes += other.published_wire_bytes;
        self.publish_errors += other.publish_errors;
        self.consumed += other.consumed;
        self.consumed_bytes += other.consumed_bytes;
        self.publish_latency.add(&other.publish_latency).expect("same bounds");
        self.end_to_end_latency.add(&other.end_to_end_latency).expect("same bounds");
        self.steal_ms += other.steal_ms;
    }
}

/// Steal time so far, summed over every CPU, in ms: the 8th value of the `cpu` line of
/// /proc/stat, in USER_HZ ticks (100 per second on Linux x86-64 and arm64). `None` where
/// there is no /proc/stat. On a virtual machine, steal is time a vCPU was ready but the host
/// ran something else: to a latency benchmark, a stall it did not cause.
/// Also the number of CPUs the steal is summed over (all online CPUs, whatever this process's
/// affinity).
/// CPU seconds a process has used, user and system, all its threads (`/proc/PID/stat`).
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    parse_process_cpu_s(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime and stime are the 14th and 15th fields, in USER_HZ (100 per second on Linux); the
/// command name before them is in parentheses and may hold spaces.
fn parse_process_cpu_s(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

pub fn steal_ms_now() -> Option<(u64, usize)> {
    parse_steal_ms(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_steal_ms(stat: &str) -> Option<(u64, usize)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    let cpus = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count();
    Some((ticks * 10, cpus.max(1)))
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p75: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50: ms(0.5),
            p75: ms(0.75),
            p95: ms(0.95),
            p99: ms(0.99),
            p99_9: ms(0.999),
            p99_99: ms(0.9999),
            max: h.max() as f64 / 1000.0,
        }
    }

    /// (percentile, ms) points for a percentile chart, from p0 to max on a log scale of
    /// "number of nines".
    pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
        if h.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut q: f64 = 0.0;
        while q < 0.99999 {
            out.push((q * 100.0, h.value_at_quantile(q) as f64 / 1000.0));
            // Ten points per decade of "1 - q".
            q = 1.0 - (1.0 - q) * 10f64.powf(-0.1);
        }
        out.push((100.0, h.max() as f64 / 1000.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_is_utime_plus_stime_after_the_command_name() {
        let stat = "4242 (ringtail shard) S 1 4242 4242 0 -1 4194560 93 0 0 0 1234 566 0 0 20 0 3 0 12 0 0";
        assert_eq!(parse_process_cpu_s(stat), Some(18.0));
        assert_eq!(parse_process_cpu_s("4242 (x) S 1"), None);
        assert!(process_cpu_s(std::process::id()).is_some());
    }

    #[test]
    fn steal_is_the_eighth_value_of_the_cpu_line() {
        let stat = "cpu  1191046 49419 356676 1517997 1535178 0 48212 467296 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_steal_ms(stat), Some((4_672_960, 1)));
        assert_eq!(parse_steal_ms("cpu0 1 2 3\n"), None);
        assert_eq!(parse_steal_ms("cpu  1 2 3\n"), None);
    }

    #[test]
    fn merge_and_percentiles() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for us in 1..=1000 {
            record(&mut a.publish_latency, us);
        }
        record(&mut b.publish_latency, 5_000_000);
        b.published = 3;
        a.merge(&b);
        assert_eq!(a.published, 3);
        let p = Percentiles::of(&a.publish_latency);
        assert_eq!(p.count, 1001);
        assert!((p.p50 - 0.5).abs() < 0.01, "{p:?}");
        assert!((p.max - 5000.0).abs() < 5.0, "{p:?}");
        let curve = Percentiles::curve(&a.publish_latency);
        assert!(curve.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
