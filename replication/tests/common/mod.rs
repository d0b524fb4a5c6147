//! Helpers shared by the crate's integration tests: an executor and scratch directories.

use std::future::Future;
use std::path::PathBuf;

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

/// An empty directory under the cargo target dir, unique to `suite` and `name`.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(suite).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
