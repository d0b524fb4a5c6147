//! The machine being checked, seen as a file tree rooted at a path: `/` for the real
//! machine, a temporary directory of fake `sys/` and `proc/` files in tests.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A view of `/sys`, `/proc` and friends below `root`. Every check reads through this,
/// so a test can point it at a fake tree and assert the findings.
#[derive(Debug, Clone)]
pub struct System {
    root: PathBuf,
    real: bool,
}

impl System {
    /// The machine this process runs on.
    pub fn real() -> System {
        System { root: PathBuf::from("/"), real: true }
    }

    /// A fake machine whose `/` is `root`. Probes that need the real kernel (opening a
    /// file with O_DIRECT) are skipped.
    pub fn fake(root: impl Into<PathBuf>) -> System {
        System { root: root.into(), real: false }
    }

    /// Whether this is the real machine (and real-only probes may run).
    pub fn is_real(&self) -> bool {
        self.real
    }

    /// The host path of an absolute path on the checked machine (`/proc/x` -> `root/proc/x`).
    pub fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    /// A file's contents with surrounding white space trimmed; `None` if it cannot be read.
    pub fn read(&self, absolute: &str) -> Option<String> {
        fs::read_to_string(self.path(absolute)).ok().map(|s| s.trim().to_string())
    }

    /// Whether a path exists.
    pub fn exists(&self, absolute: &str) -> bool {
        self.path(absolute).exists()
    }

    /// Sorted names of a directory's entries; empty if it cannot be listed.
    pub fn list(&self, absolute: &str) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.path(absolute)) {
            Ok(entries) => {
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            }
            Err(_) => Vec::new(),
        };
        names.sort_by_key(|name| natural_key(name));
        names
    }

    /// The last component of a symbolic link's resolved target (`/sys/block/vda/device`
    /// -> `virtio1`), or `None` if it is not a link or cannot be resolved.
    pub fn link_name(&self, absolute: &str) -> Option<String> {
        let target = fs::read_link(self.path(absolute)).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// Writes `value` to an existing sysfs or procfs file, as `echo value > path` would;
    /// never creates a file.
    pub fn write(&self, absolute: &str, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        let mut file = fs::OpenOptions::new().write(true).truncate(true).open(self.path(absolute))?;
        file.write_all(value.as_bytes())
    }
}

/// Sort key that orders `cpu2` before `cpu10`.
fn natural_key(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (stem.to_string(), number.parse().unwrap_or(0))
}

/// Makes `dir` absolute and resolves symbolic links on the real machine, even if the
/// directory does not exist yet (the nearest existing ancestor is resolved).
pub fn resolve_dir(system: &System, dir: &Path) -> PathBuf {
    if !system.is_real() {
        return dir.to_path_buf();
    }
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map(|c| c.join(dir)).unwrap_or_else(|_| dir.to_path_buf())
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = fs::canonicalize(existing) {
            let mut out = resolved;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}
