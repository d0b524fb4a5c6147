//! The committed metadata as the quorum simulation sees it, and the checks held against it:
//! the records the controllers' state machines applied, offset by offset (every controller
//! must agree on every offset, and an image a controller serves in their place must equal the
//! image they rebuild), the partitions' epochs along them, and what brokers were told and did
//! (their copies, the images they fetched, the proposals, registrations and controlled
//! shutdowns answered to them, and the partitions they lead).
//!
//! Brokers and controllers run ahead of the simulation's sight (it looks every few virtual
//! milliseconds): what they hold beyond the committed records seen so far is checked once the
//! records are seen, and at the end nothing may be left unchecked.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::Path;

use ringtail_replication::ids::{LeaderEpoch, NodeId, PartitionId};
use ringtail_replication::metadata::store::decode_checkpoint;
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::quorum::broker_wire::FetchBody;
use ringtail_replication::quorum::StateMachine;

/// Committed images kept, one every this many offsets, so an image at any offset is rebuilt
/// from the nearest one below it.
const IMAGE_EVERY_OFFSETS: u64 = 32;

/// A broker's copy of the committed metadata: its image, and every record it applied to it
/// with its offset. The records run on across images fetched whole and across the broker's
/// restarts (as a broker's own log of what it acted on), so nothing it applied escapes the
/// comparison with the committed records.
#[derive(Debug, Clone, Default)]
pub struct MetadataCopy {
    pub image: MetadataImage,
    records: Vec<(u64, MetadataRecord)>,
    /// How many of `records` were compared with the committed ones.
    checked: usize,
    /// The offset at which the partitions this broker leads were last looked at.
    claims_checked: Option<Option<u64>>,
}

impl MetadataCopy {
    /// The offset of the next record the copy needs.
    pub fn next_offset(&self) -> u64 {
        self.image.applied.map_or(0, |a| a + 1)
    }

    /// Applies records fetched from offset `first` on. A committed record that does not apply
    /// to the copy means the copy is not the committed metadata: an error.
    pub fn append(&mut self, first: u64, records: Vec<MetadataRecord>) -> Result<(), String> {
        if first != self.next_offset() {
            return Err(format!("records from offset {first} fetched for a copy at {:?}", self.image.applied));
        }
        for (i, record) in records.into_iter().enumerate() {
            let offset = first + i as u64;
            if let Err(e) = self.image.apply(offset, &record) {
                return Err(format!("a committed record does not apply to the broker's copy: {e} ({record:?})"));
            }
            self.records.push((offset, record));
        }
        Ok(())
    }

    /// Replaces the image with one fetched whole (the broker was too far behind).
    pub fn replace(&mut self, image: MetadataImage) {
        self.image = image;
        self.claims_checked = None;
    }

    /// Starts the image over from nothing (a broker that lost its copy).
    pub fn forget_image(&mut self) {
        self.replace(MetadataImage::default());
    }

    /// Whether every record applied was compared with the committed one.
    pub fn all_checked(&self) -> bool {
        self.checked == self.records.len()
    }
}

/// A proposal answered `Proposed { first, last }`.
#[derive(Debug)]
pub struct Proposal {
    pub broker: NodeId,
    pub expected: Option<u64>,
    pub first: u64,
    pub last: u64,
    pub records: Vec<MetadataRecord>,
}

/// A partition's leader and epochs after the committed records so far.
#[derive(Debug, Clone, Copy)]
struct Epochs {
    leader: Option<NodeId>,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
}

/// How much was checked, for the seed's summary.
#[derive(Debug, Default)]
pub struct Checked {
    pub proposals: u64,
    pub broker_images: u64,
    pub controller_images: u64,
    pub registrations: u64,
    /// Distinct (partition, leader epoch) that an unfenced broker led.
    pub leaderships: u64,
    pub partition_changes: u64,
}

/// The committed metadata seen so far and the checks waiting for more of it.
#[derive(Default)]
pub struct Committed {
    records: Vec<MetadataRecord>,
    /// The image after every record so far.
    head: MetadataImage,
    /// Images at every `IMAGE_EVERY_OFFSETS`-th offset.
    images: BTreeMap<u64, MetadataImage>,
    /// Per controller: the next offset to compare with its state machine.
    cursors: BTreeMap<u64, u64>,
    partitions: BTreeMap<PartitionId, Epochs>,
    proposals: Vec<Proposal>,
    /// Images brokers fetched, with who fetched them.
    broker_images: Vec<(NodeId, MetadataImage)>,
    /// Registrations answered to heartbeats: node, incarnation, broker epoch.
    registrations: Vec<(NodeId, [u8; 16], i64)>,
    /// (partition, leader epoch) -> the broker that led it, unfenced.
    leaders: BTreeMap<(PartitionId, i32), NodeId>,
    /// Brokers answered fenced for their controlled shutdown: node, broker epoch, and an
    /// offset every controller's image was at or below when the answer came.
    shut_down: Vec<(NodeId, i64, Option<u64>)>,
    pub checked: Checked,
}

impl Committed {
    /// Offsets of committed records seen.
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn records(&self) -> &[MetadataRecord] {
        &self.records
    }

    /// Controller `id` restarted: everything its state machine holds is compared again.
    pub fn restarted(&mut self, id: u64) {
        self.cursors.insert(id, 0);
    }

    /// Compares what controller `id` applied beyond its cursor with the committed records,
    /// extending them past the last one seen. An image served in place of records (the
    /// controller restarted or installed a snapshot since) must equal the committed image at
    /// its offset; one past the records seen waits for them.
    pub fn observe_controller(&mut self, id: u64, state_machine: &StateMachine) -> Result<(), String> {
        let applied = state_machine.state().image.applied;
        loop {
            let cursor = *self.cursors.entry(id).or_insert(0);
            if applied.is_none_or(|a| cursor > a) {
                return Ok(());
            }
            match state_machine.fetch(cursor) {
                FetchBody::UpToDate => return Ok(()),
                FetchBody::Records { first, records } => {
                    if first != cursor || records.is_empty() {
                        return Err(format!(
                            "controller {id} served {} records from offset {first} for a fetch from {cursor}",
                            records.len()
                        ));
                    }
                    let count = records.len() as u64;
                    for (i, record) in records.into_iter().enumerate() {
                        self.offer(id, first + i as u64, record)?;
                    }
                    self.cursors.insert(id, cursor + count);
                }
                FetchBody::Image(bytes) => {
                    let image = decode_checkpoint(&bytes, Path::new("a controller's image"))
                        .map_err(|e| format!("controller {id} serves a damaged image: {e}"))?;
                    let Some(at) = image.applied else {
                        return Err(format!("controller {id} serves an empty image for offset {cursor}"));
                    };
                    if at >= self.len() {
                        // Its records are not seen yet; another controller or a later look
                        // shows them.
                        return Ok(());
                    }
                    let committed = self.image_at(at);
                    if committed != image {
                        return Err(format!(
                            "controller {id}'s image at offset {at} differs from the committed records' image"
                        ));
                    }
                    self.checked.controller_images += 1;
                    self.cursors.insert(id, at + 1);
                }
            }
        }
    }

    /// Controller `id` applied `record` at `offset`: the same as every other controller there.
    fn offer(&mut self, id: u64, offset: u64, record: MetadataRecord) -> Result<(), String> {
        match offset.cmp(&self.len()) {
            std::cmp::Ordering::Less => {
                let seen = &self.records[offset as usize];
                match *seen == record {
                    true => Ok(()),
                    false => Err(format!(
                        "controller {id} applied {record:?} at metadata offset {offset}, another controller {seen:?}"
                    )),
                }
            }
            std::cmp::Ordering::Equal => self.push(record),
            std::cmp::Ordering::Greater => {
                Err(format!("controller {id} served offset {offset} past the {} records seen", self.len()))
            }
        }
    }

    /// The next committed record: it applies to the committed image, and keeps its partition's
    /// epochs rising.
    fn push(&mut self, record: MetadataRecord) -> Result<(), String> {
        let offset = self.len();
        if let Err(e) = self.head.apply(offset, &record) {
            return Err(format!("the committed record at offset {offset} does not apply to the records before: {e}"));
        }
        self.check_epochs(offset, &record)?;
        self.check_shut_down(offset, &record)?;
        self.records.push(record);
        if offset.is_multiple_of(IMAGE_EVERY_OFFSETS) {
            self.images.insert(offset, self.head.clone());
        }
        Ok(())
    }

    /// A partition's leader epoch never goes down and goes up with every change of leader; its
    /// partition epoch goes up with every change.
    fn check_epochs(&mut self, offset: u64, record: &MetadataRecord) -> Result<(), String> {
        match record {
            MetadataRecord::PartitionCreated { partition, leader, leader_epoch, .. } => {
                let epochs = Epochs { leader: *leader, leader_epoch: *leader_epoch, partition_epoch: 0 };
                if self.partitions.insert(*partition, epochs).is_some() {
                    return Err(format!("offset {offset}: partition {partition:?} is created a second time"));
                }
            }
            MetadataRecord::PartitionChanged { partition, leader, leader_epoch, partition_epoch, .. } => {
                let Some(before) = self.partitions.get(partition).copied() else {
                    return Err(format!("offset {offset}: partition {partition:?} changes before it is created"));
                };
                let rises = match *leader == before.leader {
                    true => *leader_epoch >= before.leader_epoch,
                    false => *leader_epoch > before.leader_epoch,
                };
                if !rises || *partition_epoch <= before.partition_epoch {
                    return Err(format!(
                        "offset {offset}: partition {partition:?} goes from leader {:?} at leader epoch {} \
                         (partition epoch {}) to leader {leader:?} at leader epoch {} (partition epoch {partition_epoch})",
                        before.leader, before.leader_epoch, before.partition_epoch, leader_epoch
                    ));
                }
                let after = Epochs { leader: *leader, leader_epoch: *leader_epoch, partition_epoch: *partition_epoch };
                self.partitions.insert(*partition, after);
                self.checked.partition_changes += 1;
            }
            MetadataRecord::TopicDeleted { topic_id } => {
                self.partitions.retain(|p, _| p.topic != *topic_id);
            }
            _ => {}
        }
        Ok(())
    }

    /// A broker answered fenced for its controlled shutdown is never unfenced again (that
    /// registration): it is going away, and would be handed partitions it cannot lead. (A
    /// heartbeat it sent earlier, answered late, must not undo the fence.)
    fn check_shut_down(&self, offset: u64, record: &MetadataRecord) -> Result<(), String> {
        let MetadataRecord::BrokerUnfenced { node, broker_epoch } = record else { return Ok(()) };
        let answered =
            self.shut_down.iter().find(|(n, e, at)| n == node && e == broker_epoch && at.is_none_or(|at| offset > at));
        match answered {
            Some((_, _, at)) => Err(format!(
                "broker {node} (epoch {broker_epoch}) was answered fenced for its controlled shutdown when the \
                 controllers were at offset {at:?} at most, and is unfenced again at offset {offset}"
            )),
            None => Ok(()),
        }
    }

    /// Broker `node` (epoch `epoch`) was answered fenced for its controlled shutdown while every
    /// controller's image was at or below offset `at`.
    pub fn shut_down(&mut self, node: NodeId, epoch: i64, at: Option<u64>) {
        self.shut_down.push((node, epoch, at));
    }

    /// The committed image after offset `at` (which must be seen).
    fn image_at(&self, at: u64) -> MetadataImage {
        let (mut image, from) = match self.images.range(..=at).next_back() {
            Some((offset, image)) => (image.clone(), offset + 1),
            None => (MetadataImage::default(), 0),
        };
        for offset in from..=at {
            image.apply(offset, &self.records[offset as usize]).expect("committed records apply (checked as pushed)");
        }
        image
    }

    /// Compares the records broker `node` applied with the committed ones, as far as seen.
    pub fn check_copy(&mut self, node: NodeId, copy: &mut MetadataCopy) -> Result<(), String> {
        while let Some((offset, record)) = copy.records.get(copy.checked) {
            let Some(committed) = self.records.get(*offset as usize) else { break };
            if committed != record {
                return Err(format!(
                    "broker {node} applied {record:?} at metadata offset {offset}; the committed record there is {committed:?}"
                ));
            }
            copy.checked += 1;
        }
        Ok(())
    }

    /// Broker `node` rebuilt its copy from a fetched image: it must be the committed image at
    /// its offset (checked once that offset is seen).
    pub fn fetched_image(&mut self, node: NodeId, image: MetadataImage) {
        self.broker_images.push((node, image));
    }

    pub fn proposed(&mut self, proposal: Proposal) {
        self.proposals.push(proposal);
    }

    /// A heartbeat answered broker `node` (this incarnation) that its epoch is `epoch`: its
    /// registration is the committed record at that offset.
    pub fn registered(&mut self, node: NodeId, incarnation: [u8; 16], epoch: i64) {
        self.registrations.push((node, incarnation, epoch));
    }

    /// Checks what waited for committed records that are seen now.
    pub fn settle(&mut self) -> Result<(), String> {
        let seen = self.len();
        let mut waiting = Vec::new();
        for p in std::mem::take(&mut self.proposals) {
            if p.last >= seen {
                waiting.push(p);
                continue;
            }
            self.check_proposal(&p)?;
        }
        self.proposals = waiting;
        let mut waiting = Vec::new();
        for (node, image) in std::mem::take(&mut self.broker_images) {
            let at = image.applied.ok_or_else(|| format!("broker {node} fetched an empty image"))?;
            if at >= seen {
                waiting.push((node, image));
                continue;
            }
            if self.image_at(at) != image {
                return Err(format!(
                    "broker {node} fetched an image at offset {at} that differs from the committed image there"
                ));
            }
            self.checked.broker_images += 1;
        }
        self.broker_images = waiting;
        let mut waiting = Vec::new();
        for (node, incarnation, epoch) in std::mem::take(&mut self.registrations) {
            if epoch < 0 || epoch as u64 >= seen {
                waiting.push((node, incarnation, epoch));
                continue;
            }
            match &self.records[epoch as usize] {
                MetadataRecord::BrokerRegistered { node: n, broker_epoch, incarnation: i, .. }
                    if *n == node && *broker_epoch == epoch && *i == incarnation => {}
                other => {
                    return Err(format!(
                        "broker {node} was answered broker epoch {epoch}, but the committed record there is {other:?}"
                    ))
                }
            }
            self.checked.registrations += 1;
        }
        self.registrations = waiting;
        Ok(())
    }

    /// `Proposed { first, last }`: the proposal's records, all of them, at exactly those
    /// offsets, right after the offset it was decided at.
    fn check_proposal(&mut self, p: &Proposal) -> Result<(), String> {
        let decided_after = p.expected.map_or(0, |e| e + 1);
        let span = (p.last + 1).saturating_sub(p.first) as usize;
        let at = self.records.get(p.first as usize..=p.last as usize);
        if p.first != decided_after || span != p.records.len() || at != Some(&p.records[..]) {
            return Err(format!(
                "broker {} was answered Proposed {{ first: {}, last: {} }} for {} records decided at offset {:?}, \
                 but the committed records there are {:?}",
                p.broker,
                p.first,
                p.last,
                p.records.len(),
                p.expected,
                at
            ));
        }
        self.checked.proposals += 1;
        Ok(())
    }

    /// The partitions broker `node` leads by its copy, while its copy says it (this
    /// incarnation) is unfenced: no other broker ever leads one at the same leader epoch.
    pub fn check_leadership(
        &mut self,
        node: NodeId,
        incarnation: [u8; 16],
        copy: &mut MetadataCopy,
    ) -> Result<(), String> {
        if copy.claims_checked == Some(copy.image.applied) {
            return Ok(());
        }
        copy.claims_checked = Some(copy.image.applied);
        let unfenced = copy.image.brokers().get(&node).is_some_and(|b| b.incarnation == incarnation && !b.fenced);
        if !unfenced {
            return Ok(());
        }
        for topic in copy.image.topics() {
            for (index, p) in topic.partitions.iter().enumerate() {
                if p.leader != Some(node) {
                    continue;
                }
                let partition = PartitionId { topic: topic.id, index: index as i32 };
                match self.leaders.entry((partition, p.leader_epoch.0)) {
                    Entry::Occupied(other) if *other.get() != node => {
                        return Err(format!(
                            "brokers {} and {node} both lead partition {partition:?} at leader epoch {}, unfenced",
                            other.get(),
                            p.leader_epoch
                        ))
                    }
                    Entry::Occupied(_) => {}
                    Entry::Vacant(v) => {
                        v.insert(node);
                        self.checked.leaderships += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// At the end: every controller's state machine seen to `applied`, and nothing left
    /// waiting for records.
    pub fn finish(&self, applied: Option<u64>) -> Result<(), String> {
        let end = applied.map_or(0, |a| a + 1);
        if self.len() != end {
            return Err(format!(
                "the controllers applied {end} metadata records, but the simulation saw {} of them",
                self.len()
            ));
        }
        if let Some(p) = self.proposals.first() {
            return Err(format!(
                "broker {} was answered Proposed for offsets {}..={}, never committed",
                p.broker, p.first, p.last
            ));
        }
        if let Some((node, image)) = self.broker_images.first() {
            return Err(format!("broker {node} fetched an image at offset {:?}, never committed", image.applied));
        }
        if let Some((node, _, epoch)) = self.registrations.first() {
            return Err(format!("broker {node} was answered broker epoch {epoch}, never committed"));
        }
        Ok(())
    }
}
