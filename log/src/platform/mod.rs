//! What the log asks of its runtime: files (direct-I/O segments, small buffered files,
//! directories), tasks, timers, a semaphore, and the clocks. Nothing else in this crate names
//! glommio, `std::fs` or the system clock; it all goes through this module.
//!
//! Two implementations with the same surface, chosen at build time:
//! - `real` (the default): glommio and the kernel, re-exported as they are, so the broker pays
//!   nothing for the seam;
//! - `sim` (feature `sim`, built only by the deterministic simulation in `sim/`, its own cargo
//!   workspace so the feature never reaches a shipped binary): a single-threaded executor with
//!   virtual time, and an in-memory disk that can lose unsynced writes, tear the last one and
//!   fail any operation, all driven by one seed.
//!
//! A static choice rather than a trait object or a generic parameter on `PartitionLog`: the log's
//! types stay as they are, and production calls compile to glommio's directly. The surface is
//! small on purpose; what the log uses of it is exactly what `sim` implements, and building the
//! simulation checks that.

#[cfg(not(feature = "sim"))]
mod real;
#[cfg(not(feature = "sim"))]
pub use real::*;

#[cfg(feature = "sim")]
pub mod sim;
#[cfg(feature = "sim")]
pub use sim::*;

/// A file operation's error as an `io::Error` (glommio's errors convert; the simulation's are
/// already one).
pub fn io_error(e: impl Into<std::io::Error>) -> std::io::Error {
    e.into()
}
