//! The read budget of a shard: bytes of cold reads (batches read from disk for a fetch) that
//! may be held at once, from the read until the response carrying them has been written. A
//! charge is taken on the owner shard before the read and given back by whichever thread drops
//! the response, so the count is an atomic (touched once per cold read, never per batch).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// How often a read waiting for the budget looks again.
const RECHECK: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct ReadBudget {
    limit: u64,
    used: AtomicU64,
}

/// Bytes charged to a read budget until dropped.
#[derive(Debug)]
pub struct ReadCharge {
    budget: Arc<ReadBudget>,
    bytes: u64,
}

impl ReadBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(ReadBudget { limit, used: AtomicU64::new(0) })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Charges `bytes` (at most the whole budget) if they fit now.
    pub fn try_charge(self: &Arc<Self>, bytes: u64) -> Option<ReadCharge> {
        let bytes = bytes.min(self.limit);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= self.limit).then_some(used + bytes)
            })
            .ok()
            .map(|_| ReadCharge { budget: self.clone(), bytes })
    }

    /// Charges `bytes` (at most the whole budget), waiting until they fit: backpressure on
    /// the fetches of a shard whose cold reads are all still being sent.
    pub async fn charge(self: &Arc<Self>, bytes: u64) -> ReadCharge {
        loop {
            if let Some(charge) = self.try_charge(bytes) {
                return charge;
            }
            glommio::timer::sleep(RECHECK).await;
        }
    }
}

impl ReadCharge {
    /// Sets the charge to what was read: less than reserved, or one batch more (a fetch
    /// always returns at least one whole batch).
    pub fn resize(&mut self, bytes: u64) {
        if bytes >= self.bytes {
            self.budget.used.fetch_add(bytes - self.bytes, Ordering::AcqRel);
        } else {
            self.budget.used.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
        }
        self.bytes = bytes;
    }

    /// Ties the charge to `chunk`: it is given back when the last copy of the chunk is dropped
    /// (after the response is written).
    pub fn attach(self, chunk: Bytes) -> Bytes {
        Bytes::from_owner(Charged { chunk, _charge: self })
    }
}

impl Drop for ReadCharge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

struct Charged {
    chunk: Bytes,
    _charge: ReadCharge,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_the_limit_and_come_back_when_the_chunk_goes() {
        let budget = ReadBudget::new(100);
        let mut a = budget.try_charge(60).unwrap();
        assert!(budget.try_charge(50).is_none());
        a.resize(30);
        let b = budget.try_charge(50).unwrap();
        assert_eq!(budget.used(), 80);
        let chunk = a.attach(Bytes::from_static(b"batch"));
        let copy = chunk.clone();
        drop(chunk);
        assert_eq!(budget.used(), 80, "a copy of the chunk still holds the charge");
        assert_eq!(&copy[..], b"batch");
        drop(copy);
        assert_eq!(budget.used(), 50);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.try_charge(1000).unwrap().bytes, 100, "a charge is at most the whole budget");
    }
}
