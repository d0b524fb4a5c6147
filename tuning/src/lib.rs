//! `ringtail-tuning`: system checks and tuners (`ringtail tune`, `ringtail iotune`). Not built yet (issue: tuning).
