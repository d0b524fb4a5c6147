//! Runs `ringtail tune` without the broker binary: `cargo run -p ringtail-tuning --example tune -- DATA_DIR [--apply] [--json]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data_dir = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_else(|| "ringtail-data".to_string());
    let options = ringtail_tuning::TuneOptions {
        data_dir: data_dir.into(),
        apply: args.iter().any(|a| a == "--apply"),
        json: args.iter().any(|a| a == "--json"),
        shards: None,
        space: Default::default(),
    };
    match ringtail_tuning::tune(options) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
