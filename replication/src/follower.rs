//! What a follower does with its leader's answer to a fetch, whatever carries it (Kafka's Fetch
//! between brokers, the simulation's network): batches appended as the leader wrote them, a
//! diverged log cut, a log outside the leader's started again, the high watermark and log start
//! followed. Under `sync` durability the caller waits for what was appended to be durable before
//! its next fetch (the returned wait): the next fetch offset is what the leader counts as this
//! replica's, so it must not vouch for bytes a crash could take back.

use bytes::Bytes;
use ringtail_log::{Durability, DurableWait};

use crate::error::PartitionError;
use crate::partition::{Partition, Role};

/// One partition's part of a leader's answer.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub outcome: FetchOutcome,
    /// The leader's high watermark and log start, -1 when unknown.
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Where this log diverged from the leader's: the epoch and where it ends there.
    pub diverging: Option<(i32, i64)>,
    /// Whole or cut-short batches from the fetch offset on.
    pub records: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    Ok,
    /// The fetch offset is outside the leader's log.
    OffsetOutOfRange,
    /// Anything else: the leader moved, the epoch is stale or new; the metadata will say.
    Retry,
}

/// What applying an answer did.
#[derive(Debug)]
pub enum Applied {
    /// Batches appended (`bytes` of them); under sync durability, the wait for them to be durable.
    Appended { bytes: usize, durable: Option<DurableWait> },
    /// Nothing appended (nothing new, or the log was cut or restarted).
    Nothing,
    /// Nothing to do until the metadata changes.
    Retry,
}

/// Applies `fetched`, the answer to a fetch from `fetch_offset`, to follower `p`. A replica that
/// leads now ignores it.
pub async fn apply_fetched(
    p: &Partition,
    fetch_offset: i64,
    fetched: Fetched,
    now_ms: i64,
) -> Result<Applied, PartitionError> {
    if p.role() != (Role::Follower { leader: p.leader() }) {
        return Ok(Applied::Retry);
    }
    match fetched.outcome {
        FetchOutcome::Ok => {}
        FetchOutcome::Retry => return Ok(Applied::Retry),
        FetchOutcome::OffsetOutOfRange => {
            // Behind the leader's log start (retention there): start again at it. Ahead of its
            // log end (never with epochs, unless the leader lost data): back to its high watermark.
            let target =
                if fetched.log_start_offset > fetch_offset { fetched.log_start_offset } else { fetched.high_watermark };
            if target < 0 {
                return Ok(Applied::Retry);
            }
            p.restart_at(target as u64).await?;
            return Ok(Applied::Nothing);
        }
    }
    if let Some((epoch, end_offset)) = fetched.diverging {
        p.truncate_diverged(epoch, end_offset).await?;
        return Ok(Applied::Nothing);
    }
    let mut applied = Applied::Nothing;
    if let Some(records) = fetched.records.filter(|r| !r.is_empty()) {
        let whole = whole_batches(&records);
        if whole > 0 {
            let info = p.append_as_follower(records.slice(..whole), now_ms)?;
            let durable = match p.log().config().durability {
                Durability::Sync if !cfg!(feature = "sim-mutation-follower-reports-unsynced") => {
                    Some(p.log().wait_durable_since(info.last_offset, info.tail_epoch))
                }
                _ => None,
            };
            applied = Applied::Appended { bytes: whole, durable };
        }
    }
    if fetched.high_watermark >= 0 {
        p.follow_high_watermark(fetched.high_watermark as u64);
    }
    if fetched.log_start_offset > p.log_start_offset() as i64 {
        p.follow_log_start(fetched.log_start_offset as u64).await?;
    }
    Ok(applied)
}

/// The length of the whole record batches at the front of `records` (a response may end with a
/// batch cut short).
pub fn whole_batches(records: &[u8]) -> usize {
    let mut at = 0;
    while records.len() - at >= 12 {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let Some(end) = usize::try_from(length).ok().and_then(|l| (at + 12).checked_add(l)) else { break };
        if end > records.len() {
            break;
        }
        at = end;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_batches_are_taken() {
        let batch = |len: i32| {
            let mut b = vec![0u8; 12 + len as usize];
            b[8..12].copy_from_slice(&len.to_be_bytes());
            b
        };
        let two = [batch(50), batch(70)].concat();
        assert_eq!(whole_batches(&two), 62 + 82);
        assert_eq!(whole_batches(&two[..100]), 62, "the second cut short");
        assert_eq!(whole_batches(&two[..5]), 0);
        assert_eq!(whole_batches(&[]), 0);
        let mut hostile = batch(10);
        hostile[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(whole_batches(&hostile), 0);
        hostile[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(whole_batches(&hostile), 0);
    }
}
