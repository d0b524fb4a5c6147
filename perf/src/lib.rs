//! `ringtail-perf`: micro-benchmarks of hot paths; see `src/bin/`.
