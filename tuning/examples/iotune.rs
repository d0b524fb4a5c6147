//! Runs `ringtail iotune` without the broker binary: `cargo run --release -p ringtail-tuning --example iotune -- DATA_DIR [SECONDS]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_dir = args.first().cloned().unwrap_or_else(|| "ringtail-data".to_string());
    let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    if let Err(e) = ringtail_tuning::iotune(ringtail_tuning::IotuneOptions { data_dir: data_dir.into(), seconds }) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
