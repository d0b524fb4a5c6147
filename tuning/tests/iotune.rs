//! `ringtail iotune` on the disk under the cargo target directory: the measurement runs in
//! its time budget, fills every field, cleans up, and its properties file reads back.
//! It asserts behaviour only, never speed.

use ringtail_tuning::iotune::{fio_commands, measure, write_properties, Plan, BLOCK_SIZES_BYTES, QUEUE_DEPTHS};
use ringtail_tuning::{iotune, read_properties, IotuneOptions, PROPERTIES_FILE_NAME};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn measures_within_budget_and_round_trips_the_properties_file() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("iotune");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    assert_eq!(read_properties(&dir), None);

    let started = Instant::now();
    let properties = measure(&dir, 2, 8 * 1024 * 1024).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let runs = BLOCK_SIZES_BYTES.len() * QUEUE_DEPTHS.len();
    assert_eq!(properties.write.len(), runs);
    assert_eq!(properties.read.len(), runs);
    assert!(properties.write.iter().chain(&properties.read).all(|m| m.bytes_per_s > 0), "{properties:#?}");
    assert!(properties.fdatasync_samples > 0);
    assert!(properties.fdatasync_p50_us <= properties.fdatasync_p99_us);
    assert!(BLOCK_SIZES_BYTES.contains(&properties.write_block_bytes));
    assert!(QUEUE_DEPTHS.contains(&properties.flush_concurrency));
    assert_eq!(properties.write_bytes_per_s_max, properties.write.iter().map(|m| m.bytes_per_s).max().unwrap());
    assert!(properties.fdatasync_call_p50_us <= properties.fdatasync_call_p99_us);
    assert!(properties.test_file_bytes > 0 && properties.test_file_bytes <= 8 * 1024 * 1024);
    let plan = Plan::for_budget(2);
    assert_eq!(properties.ramp_ms, plan.ramp.as_millis() as u64);
    assert_eq!(properties.window_ms, plan.window.as_millis() as u64);
    assert_eq!(properties.sync_test_ms, plan.sync_test.as_millis() as u64);
    let commands = fio_commands(&properties, &dir);
    assert_eq!(commands.len(), 2 + 2 * runs + 2, "remove, fill, every point, fdatasync, remove: {commands:#?}");
    let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(leftovers.is_empty(), "test files left behind: {leftovers:?}");

    let path = write_properties(&dir, &properties).unwrap();
    assert_eq!(path, dir.join(PROPERTIES_FILE_NAME));
    assert_eq!(read_properties(&dir), Some(properties.clone()));

    let text = fs::read_to_string(&path).unwrap().replace("version = 1", "version = 99");
    fs::write(&path, text).unwrap();
    assert_eq!(read_properties(&dir), None, "another format version is ignored");
}

#[test]
fn rejects_a_time_budget_out_of_range() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("iotune-range");
    let error = iotune(IotuneOptions { data_dir: dir.clone(), seconds: 0 }).unwrap_err();
    assert!(error.to_string().contains("--seconds 0 is out of range"), "{error}");
    assert!(
        measure(&dir, 2, 1000).is_err(),
        "test file size must be a multiple of 4 MiB (1 MiB blocks for each of 4 threads)"
    );
}
