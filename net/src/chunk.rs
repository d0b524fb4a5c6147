//! A piece of a response to send: bytes in memory, or a range of a file that goes from the
//! file to the socket without passing through user space (a cold read of verified segment
//! data). The encoders only need each piece's length; the connection's writer sends them.

use std::any::Any;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use bytes::Bytes;

#[derive(Clone, PartialEq, Eq)]
pub enum Chunk {
    Mem(Bytes),
    File(FileChunk),
}

/// `len` bytes of the open file `fd` from `position`. `hold` is whatever must live until the
/// bytes are sent (a read-budget charge).
#[derive(Clone)]
pub struct FileChunk {
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: usize,
    pub hold: Option<Arc<dyn Any + Send + Sync>>,
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Mem(b) => b.len(),
            Chunk::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, for a chunk in memory.
    pub fn as_mem(&self) -> Option<&Bytes> {
        match self {
            Chunk::Mem(b) => Some(b),
            Chunk::File(_) => None,
        }
    }
}

impl From<Bytes> for Chunk {
    fn from(b: Bytes) -> Self {
        Chunk::Mem(b)
    }
}

impl PartialEq for FileChunk {
    fn eq(&self, other: &Self) -> bool {
        self.fd.as_raw_fd() == other.fd.as_raw_fd() && self.position == other.position && self.len == other.len
    }
}

impl Eq for FileChunk {}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Chunk::Mem(b) => write!(f, "Mem({} bytes)", b.len()),
            Chunk::File(c) => write!(f, "File(fd {} at {}, {} bytes)", c.fd.as_raw_fd(), c.position, c.len),
        }
    }
}

impl fmt::Debug for FileChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileChunk(fd {} at {}, {} bytes)", self.fd.as_raw_fd(), self.position, self.len)
    }
}
