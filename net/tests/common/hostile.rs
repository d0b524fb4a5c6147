//! Hostile input for decoders, shared by `hostile.rs` (request decoders) and `hostile_client.rs`
//! (response decoders): a valid message truncated at every byte and with every 4-byte window
//! overwritten by `0x7fffffff`. Decoding must return, never panic, and never allocate much more
//! than the message itself, which proves the decoder takes every count and length through
//! `Reader`'s bounds. A test binary using `check_hostile` installs `LargestAllocation` as its
//! global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;

/// Records the largest single allocation per thread, so each test measures only its own decoder
/// even when tests run in parallel.
pub struct LargestAllocation;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with` because the allocator also runs while thread-locals are torn down.
    let _ = LARGEST_BYTES.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a size is recorded.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller upholds `realloc`'s contract, which `System` shares.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// An array may reserve one element per byte left (at most 64), and our largest element is a
/// couple of hundred bytes, so a decoder that stays within `Reader`'s bounds allocates at most
/// this much per byte of message. A count taken from the wire unchecked (2^31) goes far past it.
const ALLOCATED_PER_MESSAGE_BYTE_MAX: usize = 256;

/// Runs `decode` (which says whether it refused its input) on every hostile variant of `valid`,
/// checking the largest allocation each makes; `what` names the message in failures.
pub fn check_hostile(what: &str, valid: &Bytes, decode: impl Fn(Bytes) -> bool) {
    let allocated_max = (valid.len() * ALLOCATED_PER_MESSAGE_BYTE_MAX).max(4096);
    let mut cases = 0;
    let mut errors = 0;
    let mut run = |bytes: Bytes, case: &str, at: usize| {
        LARGEST_BYTES.with(|largest| largest.set(0));
        let refused = decode(bytes);
        let largest = LARGEST_BYTES.with(Cell::get);
        assert!(largest <= allocated_max, "{what} {case} {at}: allocated {largest} bytes at once");
        errors += usize::from(refused);
        cases += 1;
    };
    for end in 0..valid.len() {
        run(valid.slice(..end), "truncated to bytes", end);
    }
    for start in 0..valid.len().saturating_sub(3) {
        let mut hostile = valid.to_vec();
        hostile[start..start + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        run(Bytes::from(hostile), "with 0x7fffffff at byte", start);
    }
    // Every truncation fails (a message ends with a field), so the run cannot be vacuous.
    assert!(errors >= valid.len(), "{what}: only {errors} of {cases} hostile messages refused");
}
