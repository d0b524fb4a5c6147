//! The partition table: the replicas a shard owns, by partition id, and those that could not
//! be opened. Owned by its shard; nothing else touches it.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use ringtail_log::LogError;
use ringtail_replication::{Partition, PartitionError, PartitionId, TopicId};

/// Why a shard has no replica to serve.
#[derive(Debug, Clone)]
pub enum NoReplica {
    /// Its storage failed when it was opened.
    Offline(LogError),
    /// This shard does not hold it (the topic was deleted, or routing was stale).
    NotHere,
}

/// Why a shard could not serve a partition's part of a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("the partition's storage failed when it was opened: {0}")]
    Offline(LogError),
    #[error("this shard holds no replica of the partition")]
    NotHere,
    #[error("the owner shard stopped before answering")]
    ShardStopped,
    /// acks=all: the in-sync replicas did not all have the batch within the request's timeout
    /// (it may still be committed).
    #[error("not acknowledged by every in-sync replica within the request's timeout")]
    TimedOut,
}

impl From<NoReplica> for ServeError {
    fn from(e: NoReplica) -> Self {
        match e {
            NoReplica::Offline(e) => ServeError::Offline(e),
            NoReplica::NotHere => ServeError::NotHere,
        }
    }
}

#[derive(Default)]
pub struct PartitionTable {
    partitions: RefCell<HashMap<PartitionId, Rc<Partition>>>,
    /// Replicas whose log could not be opened, with their topic name.
    offline: RefCell<HashMap<PartitionId, (Rc<str>, LogError)>>,
    /// Replicas whose storage failure was logged (once each).
    reported: RefCell<HashSet<PartitionId>>,
}

impl PartitionTable {
    pub fn get(&self, id: PartitionId) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(&id).cloned()
    }

    pub fn lookup(&self, id: PartitionId) -> Result<Rc<Partition>, NoReplica> {
        if let Some(p) = self.get(id) {
            return Ok(p);
        }
        match self.offline.borrow().get(&id) {
            Some((_, e)) => Err(NoReplica::Offline(e.clone())),
            None => Err(NoReplica::NotHere),
        }
    }

    pub fn insert(&self, partition: Rc<Partition>) {
        self.offline.borrow_mut().remove(&partition.id());
        self.partitions.borrow_mut().insert(partition.id(), partition);
    }

    pub fn set_offline(&self, id: PartitionId, topic: Rc<str>, error: LogError) {
        self.offline.borrow_mut().insert(id, (topic, error));
    }

    /// Takes a replica out of the table (a damaged one, to be rebuilt): returns it if it was
    /// open, and forgets that it failed.
    pub fn remove(&self, id: PartitionId) -> Option<Rc<Partition>> {
        self.offline.borrow_mut().remove(&id);
        self.reported.borrow_mut().remove(&id);
        self.partitions.borrow_mut().remove(&id)
    }

    /// Replicas whose storage failed: those that could not be opened, and open ones whose log
    /// failed since.
    pub fn damaged(&self) -> Vec<PartitionId> {
        let mut ids: Vec<PartitionId> = self.offline.borrow().keys().copied().collect();
        ids.extend(self.partitions.borrow().iter().filter(|(_, p)| p.log().failed().is_some()).map(|(id, _)| *id));
        ids
    }

    /// True the first time it is asked for a partition (to log its failure once).
    pub fn report_once(&self, id: PartitionId) -> bool {
        self.reported.borrow_mut().insert(id)
    }

    /// Takes every replica of a topic out of the table.
    pub fn remove_topic(&self, topic: TopicId) -> Vec<Rc<Partition>> {
        self.offline.borrow_mut().retain(|id, _| id.topic != topic);
        let mut partitions = self.partitions.borrow_mut();
        let ids: Vec<PartitionId> = partitions.keys().filter(|id| id.topic == topic).copied().collect();
        ids.into_iter().filter_map(|id| partitions.remove(&id)).collect()
    }

    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }

    /// Replicas that could not be opened: (topic, index).
    pub fn offline(&self) -> Vec<(Rc<str>, i32)> {
        self.offline.borrow().iter().map(|(id, (topic, _))| (topic.clone(), id.index)).collect()
    }

    pub fn drain(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow_mut().drain().map(|(_, p)| p).collect()
    }
}
