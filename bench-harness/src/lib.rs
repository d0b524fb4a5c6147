//! `ringtail-bench`: the bundled OpenMessaging-style load generator and latency harness. Not built yet (issue: bench harness).
