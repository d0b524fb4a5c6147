//! Test helpers: executors, scratch directories, batches, a seeded random source, a model log.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::build;
use ringtail_log::{Faults, Flusher, LogConfig, PartitionLog};

/// Runs `f` on a fresh glommio executor.
pub fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(f)
        .expect("start executor")
        .join()
        .expect("executor thread")
}

/// An empty directory under the cargo target dir, unique to `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ringtail-log-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 10,
        preallocate_bytes: 16 << 10,
        index_interval_bytes: 1024,
        batch_bytes_max: 32 << 10,
        cache_bytes_max: 16 << 10,
        read_chunk_bytes: 8 << 10,
        retention_age_ms_max: None,
        ..LogConfig::default()
    }
}

pub fn flusher() -> Rc<Flusher> {
    Flusher::new(Faults::default(), Duration::from_millis(5))
}

pub async fn open(dir: &Path, config: &LogConfig, flusher: &Rc<Flusher>) -> Rc<PartitionLog> {
    PartitionLog::open(dir, *config, flusher).await.expect("open log")
}

/// Drops the test's handle and waits until background flushes started by appends let go of
/// the log too: a "crash" must not leave the old log writing while a new one opens the files.
pub async fn drop_and_wait(log: Rc<PartitionLog>) {
    let weak = Rc::downgrade(&log);
    drop(log);
    while weak.strong_count() > 0 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// A batch of `count` records of `value_len` bytes whose values encode `tag`.
pub fn batch(tag: u64, count: usize, value_len: usize, timestamp: i64) -> Bytes {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let mut v = format!("{tag}:{i}:").into_bytes();
            v.resize(value_len.max(v.len()), b'x');
            v
        })
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    Bytes::from(build::batch(&refs, timestamp))
}

/// The bytes the log stores for `batch` once it is assigned `base_offset` under `epoch`.
pub fn stored(batch: &[u8], base_offset: u64, epoch: i32) -> Vec<u8> {
    let mut b = batch.to_vec();
    b[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
    b[12..16].copy_from_slice(&epoch.to_be_bytes());
    b
}

/// xorshift64*: small, seeded, reproducible. The seed comes from `RINGTAIL_SEED` or the clock
/// and is printed so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("RINGTAIL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        println!("{test}: RINGTAIL_SEED={seed}");
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// What the log should hold: each batch's base and last offset and stored bytes.
#[derive(Default, Clone)]
pub struct Model {
    pub batches: Vec<(u64, u64, Vec<u8>)>,
    pub log_start_offset: u64,
}

impl Model {
    pub fn end(&self) -> u64 {
        self.batches.last().map_or(self.log_start_offset, |b| b.1 + 1)
    }

    pub fn push(&mut self, batch: &[u8], base_offset: u64, count: u64, epoch: i32) {
        self.batches.push((base_offset, base_offset + count - 1, stored(batch, base_offset, epoch)));
    }

    /// Keeps the batches that end before `next_offset`.
    pub fn truncate(&mut self, next_offset: u64) {
        self.batches.retain(|b| b.1 < next_offset);
    }
}

/// Reads the whole log from its start and checks it equals the model's batches from there.
pub async fn assert_matches(log: &PartitionLog, model: &Model, rng: &mut Rng) {
    let start = log.log_start_offset();
    assert_eq!(log.log_end_offset(), model.end(), "log end offset");
    let expected: Vec<&(u64, u64, Vec<u8>)> = model.batches.iter().filter(|b| b.1 >= start).collect();
    let mut offset = start;
    let mut i = 0;
    while offset < log.log_end_offset() {
        let max_bytes = rng.range(1, 40_000) as usize;
        let got = log.read(offset, max_bytes, u64::MAX).await.expect("read");
        assert!(!got.chunks.is_empty(), "read at {offset} returned nothing before the end");
        let bytes: Vec<u8> = got.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(bytes.len(), got.bytes);
        let mut at = 0;
        let mut n = 0;
        while at < bytes.len() {
            let (base, last, data) = expected[i];
            assert_eq!(&bytes[at..at + data.len()], &data[..], "batch {base}..={last} differs");
            at += data.len();
            i += 1;
            n += 1;
        }
        assert!(n == 1 || got.bytes <= max_bytes, "read more than max_bytes with several batches");
        offset = got.next_offset;
    }
    assert_eq!(i, expected.len(), "all batches read");
}
