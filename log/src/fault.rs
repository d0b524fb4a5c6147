//! Fault points: every disk operation of the log asks here first, so tests can make any of
//! them fail and check that the failure is a clean, fatal error and not a panic or lost data.

use std::fmt;
use std::io;
use std::path::Path;
use std::rc::Rc;

use crate::error::LogError;

/// A kind of disk operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoOp {
    Create,
    Read,
    Write,
    Sync,
    Truncate,
    Rename,
    Remove,
}

impl IoOp {
    fn verb(self) -> &'static str {
        match self {
            IoOp::Create => "creating",
            IoOp::Read => "reading",
            IoOp::Write => "writing",
            IoOp::Sync => "syncing",
            IoOp::Truncate => "truncating",
            IoOp::Rename => "renaming",
            IoOp::Remove => "removing",
        }
    }
}

type Injector = dyn Fn(IoOp, &Path) -> bool;

/// Decides which operations fail. Owned by one shard; cloning shares the decision function.
/// The default injects nothing and costs one branch per operation.
#[derive(Clone, Default)]
pub struct Faults {
    injector: Option<Rc<Injector>>,
    /// Injected failures are ENOSPC (a full file system) rather than an I/O error.
    no_space: bool,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.injector.is_some() { "Faults(active)" } else { "Faults(none)" })
    }
}

impl Faults {
    /// Fails every operation for which `fail` returns true with an injected I/O error.
    pub fn new(fail: impl Fn(IoOp, &Path) -> bool + 'static) -> Self {
        Faults { injector: Some(Rc::new(fail)), no_space: false }
    }

    /// Fails every operation for which `fail` returns true as a full file system would
    /// (ENOSPC): operations that take space get [`LogError::NoSpace`], the others an I/O error.
    pub fn no_space(fail: impl Fn(IoOp, &Path) -> bool + 'static) -> Self {
        Faults { injector: Some(Rc::new(fail)), no_space: true }
    }

    pub(crate) fn check(&self, op: IoOp, path: &Path) -> Result<(), LogError> {
        match &self.injector {
            Some(fail) if fail(op, path) => Err(match self.no_space {
                true if matches!(op, IoOp::Create | IoOp::Write) => {
                    LogError::io_taking_space(op.verb(), path, io::Error::from_raw_os_error(libc::ENOSPC))
                }
                true => LogError::io(op.verb(), path, io::Error::from_raw_os_error(libc::ENOSPC)),
                false => LogError::io(op.verb(), path, io::Error::other("injected fault")),
            }),
            _ => Ok(()),
        }
    }
}
