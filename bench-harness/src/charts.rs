//! Charts as one self-contained HTML file of inline SVG: latency percentiles, latency over
//! time and throughput over time, one line per target.

use std::fmt::Write;

use crate::driver::RunResult;

const W: f64 = 760.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line chart. `x_log_nines`: the x values are percentiles, drawn by their number of nines.
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: Vec<(String, Vec<(f64, f64)>)>,
    x_log_nines: bool,
}

fn nines(percentile: f64) -> f64 {
    -(1.0 - (percentile / 100.0).min(0.999_999)).log10()
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= v {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

impl Chart<'_> {
    fn svg(&self) -> String {
        let x_of = |x: f64| if self.x_log_nines { nines(x) } else { x };
        let points: Vec<(f64, f64)> =
            self.series.iter().flat_map(|(_, pts)| pts.iter().map(|&(x, y)| (x_of(x), y))).collect();
        let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max).max(if self.x_log_nines { 5.0 } else { 1.0 });
        let y_max = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let sx = |x: f64| LEFT + x / x_max * pw;
        let sy = |y: f64| TOP + ph - y / y_max * ph;
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="18" font-size="14" text-anchor="middle">{}</text>"#,
            W / 2.0,
            escape(self.title)
        );
        for i in 0..=5 {
            let y = y_max * f64::from(i) / 5.0;
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{}" y1="{py}" y2="{py}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 5.0,
                sy(y) + 4.0,
                format_number(y),
                py = sy(y)
            );
        }
        let ticks: Vec<(f64, String)> = if self.x_log_nines {
            [(0.0, "0"), (1.0, "90"), (2.0, "99"), (3.0, "99.9"), (4.0, "99.99"), (5.0, "99.999")]
                .iter()
                .filter(|(n, _)| *n <= x_max)
                .map(|(n, l)| (*n, (*l).to_string()))
                .collect()
        } else {
            (0..=6).map(|i| x_max * f64::from(i) / 6.0).map(|x| (x, format_number(x))).collect()
        };
        for (x, label) in ticks {
            let _ = write!(
                out,
                r##"<line x1="{px}" x2="{px}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{px}" y="{}" text-anchor="middle">{label}</text>"##,
                TOP + ph,
                TOP + ph + 15.0,
                px = sx(x)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(14,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 8.0,
            escape(self.x_label),
            TOP + ph / 2.0,
            escape(self.y_label)
        );
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let path: Vec<String> = pts.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x_of(x)), sy(y))).collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{}"/>"#,
                path.join(" ")
            );
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
                LEFT + 10.0,
                TOP + 6.0 + 14.0 * i as f64,
                LEFT + 24.0,
                TOP + 15.0 + 14.0 * i as f64,
                escape(name)
            );
        }
        out.push_str("</svg>");
        out
    }
}

fn format_number(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The HTML report of one run or a comparison.
pub fn html(results: &[RunResult]) -> String {
    let label = |r: &RunResult| r.target.name.clone();
    let mut charts = Vec::new();
    for (title, publish) in
        [("Publish latency (send to acknowledgement)", true), ("End-to-end latency (send to receipt)", false)]
    {
        charts.push(Chart {
            title,
            x_label: "percentile",
            y_label: "ms",
            series: results
                .iter()
                .map(|r| {
                    let c = if publish { &r.publish_latency_curve } else { &r.end_to_end_latency_curve };
                    (label(r), c.clone())
                })
                .collect(),
            x_log_nines: true,
        });
    }
    charts.push(Chart {
        title: "Latency over time (p50 and p99, publish and end to end)",
        x_label: "seconds",
        y_label: "ms",
        series: results
            .iter()
            .flat_map(|r| {
                let pick = |f: fn(&crate::driver::IntervalRow) -> f64| -> Vec<(f64, f64)> {
                    r.intervals.iter().map(|i| (i.t_s, f(i))).collect()
                };
                vec![
                    (format!("{} publish p50", label(r)), pick(|i| i.publish_latency.p50)),
                    (format!("{} publish p99", label(r)), pick(|i| i.publish_latency.p99)),
                    (format!("{} e2e p50", label(r)), pick(|i| i.end_to_end_latency.p50)),
                    (format!("{} e2e p99", label(r)), pick(|i| i.end_to_end_latency.p99)),
                ]
            })
            .collect(),
        x_log_nines: false,
    });
    charts.push(Chart {
        title: "CPU time stolen by the hypervisor (ms per second, all CPUs; 0 on bare metal)",
        x_label: "seconds",
        y_label: "ms",
        series: results
            .iter()
            .map(|r| (label(r), r.intervals.iter().map(|i| (i.t_s, i.steal_ms as f64)).collect()))
            .collect(),
        x_log_nines: false,
    });
    charts.push(Chart {
        title: "Throughput over time",
        x_label: "seconds",
        y_label: "MB/s",
        series: results
            .iter()
            .flat_map(|r| {
                vec![
                    (format!("{} publish", label(r)), r.intervals.iter().map(|i| (i.t_s, i.publish_mbps)).collect()),
                    (format!("{} consume", label(r)), r.intervals.iter().map(|i| (i.t_s, i.consume_mbps)).collect()),
                ]
            })
            .collect(),
        x_log_nines: false,
    });
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ringtail-bench</title>\
         <style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>",
    );
    if let Some(first) = results.first() {
        let _ = write!(
            out,
            "<h2>ringtail-bench: {}</h2><p>{} topic(s) x {} partitions, {} B messages, {} producer(s), {} consumer(s), \
             rate {}, {} s measured after {} s warm-up</p>",
            escape(&first.workload.name),
            first.workload.topics,
            first.workload.partitions_per_topic,
            first.workload.message_size,
            first.workload.producers,
            first.workload.consumers,
            if first.workload.producer_rate == 0 { "unlimited".to_string() } else { format!("{} msg/s", first.workload.producer_rate) },
            first.workload.duration_s,
            first.workload.warmup_s,
        );
    }
    out.push_str("<table><tr><th>target</th><th>publish msg/s</th><th>publish MB/s</th><th>consume MB/s</th>\
                  <th>pub p50 ms</th><th>pub p99 ms</th><th>pub p99.9 ms</th><th>e2e p50 ms</th><th>e2e p99 ms</th><th>e2e p99.9 ms</th><th>CPU steal %</th></tr>");
    for r in results {
        let s = &r.summary;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.0}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1}</td></tr>",
            escape(&r.target.name),
            s.publish_rate,
            s.publish_mbps,
            s.consume_mbps,
            s.publish_latency.p50,
            s.publish_latency.p99,
            s.publish_latency.p99_9,
            s.end_to_end_latency.p50,
            s.end_to_end_latency.p99,
            s.end_to_end_latency.p99_9,
            s.cpu_steal_percent
        );
    }
    out.push_str("</table>");
    for c in charts {
        out.push_str("<div>");
        out.push_str(&c.svg());
        out.push_str("</div>");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_lines_and_labels() {
        let c = Chart {
            title: "t <1>",
            x_label: "x",
            y_label: "y",
            series: vec![("a".into(), vec![(0.0, 1.0), (99.0, 2.0), (100.0, 3.0)])],
            x_log_nines: true,
        };
        let svg = c.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("polyline") && svg.contains("t &lt;1&gt;") && svg.contains("99.9"));
        assert_eq!(nice_max(7.3), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
    }
}
