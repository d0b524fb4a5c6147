//! Replication under the simulation: three replicas of one partition, each the production
//! `Partition` over a `PartitionLog` (sync durability) on the simulated disk, its leader side
//! (`follower_fetch`, reads up to the log end, `isr_proposal`, acks=all waits) and its follower
//! side (`follower::apply_fetched`, waiting for durability before the next fetch); a controller
//! deciding with the production decide code (`brokers::{register, heartbeat, fence}` and
//! `isr::alter_isr` on a `MetadataImage`; the controller itself does not fail here: the quorum
//! has its own simulation); and a producer sending acks=all batches to whoever leads. All of it
//! over the simulated network (delays, drops, duplicates, partitions); replicas crash (tasks
//! dropped, unsynced writes lost), sometimes all at once (a power loss), and restart; a
//! replica's storage fails (its writes fail from then on): it reports the damage in its
//! heartbeats, the controller takes it out of the ISR and leadership (`brokers::heartbeat`), and
//! once the metadata says so the replica is rebuilt (files deleted, fetched again from the
//! leader) as a broker does; the last in-sync replica is never rebuilt. A restart (a kill, a
//! power loss, or the operator's repair once the faults are over) reopens damaged storage.
//! Operators reassign the partition (`reassign::alter`: a shrink to two replicas, a regrowth, a
//! reorder, a cancel) while all this goes on: an added replica starts empty and fetches, the move
//! completes through `isr::alter_isr` once its target is in sync, and a replica the metadata no
//! longer lists is deleted as a broker does (`Shard::drop_replica`); at the end the partition is
//! moved back to all three.
//!
//! Invariants: no acknowledged batch is lost or moved; no two replicas hold different batches
//! at an offset below either's high watermark (checked as the run goes, against everything
//! seen committed so far); a leader's high watermark never moves back within its epoch; at the
//! end, healed, the replicas converge to identical logs. The mutation (`--replica-mutation`):
//! a follower's fetch vouches for batches before they are durable; a power loss then loses
//! acknowledged batches.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::build;
use ringtail_log::platform::sim::executor::spawn_in_group;
use ringtail_log::platform::{self, DiskFaults, NetFaults, Network, RunEnd, Sim, SimDisk};
use ringtail_log::{BatchHeader, Durability, Faults, Flusher, IoOp, LogConfig, PartitionLog};
use ringtail_replication::follower::{self, Applied, FetchOutcome, Fetched};
use ringtail_replication::ids::{LeaderEpoch, NodeId, PartitionId, TopicId};
use ringtail_replication::metadata::brokers::{self, Registration};
use ringtail_replication::metadata::isr::{self, IsrDecided, IsrProposal, IsrRefusal};
use ringtail_replication::metadata::reassign;
use ringtail_replication::metadata::{MetadataImage, MetadataRecord, PartitionImage};
use ringtail_replication::{Acks, FollowerFetch, Isolation, Partition, PartitionError, Role};

const CONTROLLER: u32 = 0;
const REPLICAS: u32 = 3;
const CLIENT: u32 = REPLICAS + 1;
const TOPIC: TopicId = TopicId([9; 16]);
const PARTITION: PartitionId = PartitionId { topic: TOPIC, index: 0 };
/// A replica not heard from for this long is fenced.
const SESSION: Duration = Duration::from_millis(300);
/// A follower not caught up for this long leaves the ISR.
const LAG_MS: i64 = 200;
/// How long a leader waits for the controller's answer to an ISR change (a broker: 5 s).
const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
enum Msg {
    Fetch {
        id: u64,
        epoch: i32,
        offset: i64,
        last_epoch: i32,
    },
    Fetched {
        id: u64,
        fetched: Fetched,
    },
    Produce {
        id: u64,
        bytes: Bytes,
    },
    Produced {
        id: u64,
        base_offset: Option<u64>,
    },
    /// A replica's heartbeat, with the incarnation of its process (a restart registers anew)
    /// and whether its storage failed.
    Heartbeat {
        incarnation: u8,
        damaged: bool,
    },
    Alter {
        proposal: IsrProposal,
    },
    Altered {
        proposal: IsrProposal,
        outcome: Result<IsrDecided, IsrRefusal>,
    },
    /// The controller's image (the replica's metadata copy).
    State {
        image: MetadataImage,
    },
}

/// The controller: the metadata image, changed only by the production decide code.
struct Controller {
    image: MetadataImage,
    next_offset: u64,
    heard: HashMap<NodeId, platform::Instant>,
}

impl Controller {
    fn apply(&mut self, records: Vec<MetadataRecord>) {
        for r in records {
            self.image.apply(self.next_offset, &r).expect("decided records apply");
            self.next_offset += 1;
        }
    }

    fn partition(&self) -> PartitionImage {
        self.image.topic_by_id(TOPIC).expect("the topic").partitions[0].clone()
    }

    fn epoch(&self, node: NodeId) -> i64 {
        self.image.brokers()[&node].epoch
    }

    fn live(&self) -> Vec<NodeId> {
        self.image.brokers().iter().filter(|(_, b)| !b.fenced).map(|(n, _)| *n).collect()
    }
}

struct Replica {
    partition: RefCell<Option<Rc<Partition>>>,
    /// The fetch in progress and its answer once it came.
    fetch_id: Cell<u64>,
    answer: RefCell<Option<(u64, Fetched)>>,
    /// Offsets of this replica's log checked against the committed history (reset at restart).
    checked_to: Cell<u64>,
    alive: Cell<bool>,
    /// The unfenced brokers as the controller last said.
    live: RefCell<Vec<NodeId>>,
    /// Processes started: each registers as a new incarnation, as a restarted broker does.
    lives: Cell<u8>,
    /// Its storage failed: every write fails until its files are deleted (rebuilt) or the
    /// process restarts after the faults (repaired).
    damaged: Rc<Cell<bool>>,
    /// A rebuild is under way (the metadata's next views ask for it again).
    rebuilding: Cell<bool>,
    /// A reassignment moved the replica away: its files are being deleted (`dropping`) or are
    /// gone and no process holds it (`removed`) until a reassignment adds it back.
    dropping: Cell<bool>,
    removed: Cell<bool>,
}

struct World {
    net: Network<Msg>,
    controller: RefCell<Controller>,
    replicas: Vec<Rc<Replica>>,
    config: LogConfig,
    /// Offset -> batch id, for every batch seen below a replica's high watermark.
    committed: RefCell<BTreeMap<u64, u64>>,
    /// Batch id -> offsets it was acknowledged at.
    acked: RefCell<BTreeMap<u64, Vec<u64>>>,
    /// (node, leader epoch) -> the highest high watermark seen while it led.
    leader_hw: RefCell<HashMap<(u32, i32), u64>>,
    violation: RefCell<Option<String>>,
    verbose: bool,
    kills: Cell<u64>,
    power_losses: Cell<u64>,
    /// The faults are over: the producer stops once it sent its batches.
    faults_over: Cell<bool>,
    partitions: Cell<u64>,
    damages: Cell<u64>,
    rebuilds: Cell<u64>,
    reassignments: Cell<u64>,
    removals: Cell<u64>,
    sim: Rc<Sim>,
}

impl World {
    fn violate(&self, why: String) {
        self.violation.borrow_mut().get_or_insert(why);
    }
}

fn node(address: u32) -> NodeId {
    NodeId(address as i32)
}

fn dir(address: u32) -> PathBuf {
    PathBuf::from(format!("/r{address}/t-0"))
}

/// The batches of a log from `from` (a batch boundary) up to `to`: (offset, batch id).
async fn batches(log: &PartitionLog, from: u64, to: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut offset = from.max(log.log_start_offset());
    while offset < to {
        let Ok(r) = log.read(offset, 64 << 10, to).await else { break };
        if r.chunks.is_empty() {
            break;
        }
        let bytes: Vec<u8> = r.chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut at = 0;
        while at < bytes.len() {
            let Ok(h) = BatchHeader::parse(&bytes[at..]) else { break };
            out.push((h.base_offset as u64, h.base_timestamp as u64));
            at += h.size();
        }
        offset = r.next_offset;
    }
    out
}

/// Starts (or restarts) replica `address` in its own task group, from its directory.
fn boot(world: &Rc<World>, address: u32) {
    if world.replicas[address as usize - 1].removed.get() {
        // No replica here: a reassignment moved it away (and boots it again if it comes back).
        return;
    }
    let w = world.clone();
    spawn_in_group(address, async move {
        let damaged = w.replicas[address as usize - 1].damaged.clone();
        let faults = Faults::new(move |op, _| damaged.get() && op == IoOp::Write);
        let flusher = Flusher::new(faults, Duration::from_millis(5));
        let _ticking = flusher.spawn();
        let log = match PartitionLog::open(dir(address), w.config, &flusher).await {
            Ok(log) => log,
            Err(e) => {
                w.violate(format!("replica {address} cannot open its log: {e}"));
                return;
            }
        };
        let r = &w.replicas[address as usize - 1];
        // A restarted process opens its replica as its metadata copy says, without leading:
        // its new registration (with its first heartbeat) is not in the image yet.
        let state = w.controller.borrow().partition().as_acted_on(node(address), false);
        let p = Partition::new(PARTITION, Rc::from("t"), node(address), log, &state);
        *r.partition.borrow_mut() = Some(p.clone());
        r.checked_to.set(0);
        r.alive.set(true);
        r.rebuilding.set(false);
        platform::spawn_local(fetcher(w.clone(), address, p.clone())).detach();
        let incarnation = r.lives.get().wrapping_add(1);
        r.lives.set(incarnation);
        platform::spawn_local(heartbeats(w.clone(), address, incarnation)).detach();
        platform::spawn_local(isr(w.clone(), address, p.clone())).detach();
        receive(w, address, p).await;
    });
}

async fn heartbeats(w: Rc<World>, address: u32, incarnation: u8) {
    let r = w.replicas[address as usize - 1].clone();
    loop {
        // As a broker's heartbeat: its replicas whose storage failed.
        let damaged = r.partition.borrow().as_ref().is_some_and(|p| p.log().failed().is_some());
        w.net.send(address, CONTROLLER, Msg::Heartbeat { incarnation, damaged });
        platform::sleep(Duration::from_millis(50)).await;
    }
}

async fn isr(w: Rc<World>, address: u32, p: Rc<Partition>) {
    let r = w.replicas[address as usize - 1].clone();
    loop {
        platform::sleep(Duration::from_millis(30)).await;
        let eligible = |n: NodeId| r.live.borrow().contains(&n);
        if let Some(q) = p.isr_proposal(ringtail_log::now_ms(), LAG_MS, eligible) {
            p.isr_proposed(&q, ringtail_log::now_ms());
            w.net.send(address, CONTROLLER, Msg::Alter { proposal: q.clone() });
            // As a broker's AlterPartition call: no answer within its timeout counts as none (the
            // request or its answer was lost), and the leader may propose again.
            let p = p.clone();
            platform::spawn_local(async move {
                platform::sleep(ALTER_PARTITION_TIMEOUT).await;
                p.isr_answered(&q, None);
            })
            .detach();
        }
    }
}

/// A follower's fetches: one at a time, answered or given up after a while; what comes back
/// goes through the production follower step, and durability is awaited before the next fetch.
async fn fetcher(w: Rc<World>, address: u32, p: Rc<Partition>) {
    let r = w.replicas[address as usize - 1].clone();
    let mut busy = false;
    loop {
        // As a broker's fetcher: the next fetch at once after data, a pause after nothing.
        if !busy {
            platform::sleep(Duration::from_millis(3)).await;
        }
        busy = false;
        let Role::Follower { leader: Some(leader) } = p.role() else { continue };
        let id = r.fetch_id.get() + 1;
        r.fetch_id.set(id);
        let (epoch, offset) = (p.leader_epoch().0, p.log_end_offset() as i64);
        let request = Msg::Fetch { id, epoch, offset, last_epoch: p.last_fetched_epoch() };
        w.net.send(address, leader.0 as u32, request);
        let mut waited = 0;
        let fetched = loop {
            platform::sleep(Duration::from_micros(100)).await;
            waited += 1;
            match r.answer.borrow_mut().take() {
                Some((answered, fetched)) if answered == id => break Some(fetched),
                _ if waited > 600 => break None,
                _ => {}
            }
        };
        let Some(fetched) = fetched else { continue };
        if p.leader_epoch().0 != epoch {
            continue;
        }
        match follower::apply_fetched(&p, offset, fetched, ringtail_log::now_ms()).await {
            Ok(Applied::Appended { durable, .. }) => {
                busy = true;
                if let Some(wait) = durable {
                    let _ = wait.await;
                }
            }
            Ok(_) => {}
            Err(e) if e.is_storage_failure() => return,
            Err(_) => {}
        }
    }
}

async fn receive(w: Rc<World>, address: u32, p: Rc<Partition>) {
    let r = w.replicas[address as usize - 1].clone();
    loop {
        let (from, msg) = w.net.recv(address).await;
        match msg {
            Msg::State { image } => {
                // As a broker's `NodeEffects::remove`: a replica a completed reassignment no
                // longer lists is deleted, its files with it.
                let listed =
                    image.topic_by_id(TOPIC).expect("the topic").partitions[0].replicas.contains(&node(address));
                if !listed {
                    if !r.dropping.get() {
                        r.dropping.set(true);
                        drop_replica(&w, address);
                    }
                    continue;
                }
                // As a broker's shards take a new view (`Shard::set_view`): the production rule
                // for whether this process may lead yet.
                let incarnation = [r.lives.get(); 16];
                let may_lead = image.may_lead(node(address), &incarnation);
                let partition =
                    image.topic_by_id(TOPIC).expect("the topic").partitions[0].as_acted_on(node(address), may_lead);
                *r.live.borrow_mut() = image.brokers().iter().filter(|(_, b)| !b.fenced).map(|(n, _)| *n).collect();
                p.apply_state(&partition, ringtail_log::now_ms());
                // As `rebuild_damaged` on a broker: a damaged replica the metadata has out of
                // the ISR, with another leader, is deleted and fetched again.
                let state = image.topic_by_id(TOPIC).expect("the topic").partitions[0].clone();
                let me = node(address);
                let out = state.replicas.contains(&me) && !state.isr.contains(&me);
                if p.log().failed().is_some() && out && state.leader.is_some_and(|l| l != me) && !r.rebuilding.get() {
                    r.rebuilding.set(true);
                    rebuild(&w, address);
                }
            }
            Msg::Fetched { id, fetched } => *r.answer.borrow_mut() = Some((id, fetched)),
            Msg::Altered { proposal, outcome } => p.isr_answered(&proposal, outcome.as_ref().ok()),
            Msg::Fetch { id, epoch, offset, last_epoch } => {
                let answer = serve_fetch(&p, node(from), epoch, offset, last_epoch).await;
                w.net.send(address, from, Msg::Fetched { id, fetched: answer });
            }
            Msg::Produce { id, bytes } => {
                let (w, p) = (w.clone(), p.clone());
                platform::spawn_local(async move {
                    let base_offset = match p.append_as_leader(bytes, Acks::All, ringtail_log::now_ms()) {
                        Ok(appended) => {
                            let base = appended.info.base_offset;
                            p.wait_acked(appended.wait).await.ok().map(|()| base)
                        }
                        Err(_) => None,
                    };
                    w.net.send(address, CLIENT, Msg::Produced { id, base_offset });
                })
                .detach();
            }
            _ => {}
        }
    }
}

/// The leader's side of a follower's fetch: checked, its progress noted, then read to the log end.
async fn serve_fetch(p: &Partition, from: NodeId, epoch: i32, offset: i64, last_epoch: i32) -> Fetched {
    let mut fetched = Fetched {
        outcome: FetchOutcome::Retry,
        high_watermark: -1,
        log_start_offset: -1,
        diverging: None,
        records: None,
    };
    match p.follower_fetch(from, offset, last_epoch, epoch, ringtail_log::now_ms()) {
        Ok(FollowerFetch::Diverging { epoch, end_offset }) => {
            fetched.outcome = FetchOutcome::Ok;
            fetched.diverging = Some((epoch, end_offset));
        }
        Ok(FollowerFetch::Read) => match p.read(offset, 16 << 10, Isolation::LogEnd).await {
            Ok(read) => {
                fetched.outcome = FetchOutcome::Ok;
                let bytes: Vec<u8> = read.chunks.iter().flat_map(|c| c.iter().copied()).collect();
                fetched.records = Some(Bytes::from(bytes));
            }
            Err(_) => return fetched,
        },
        Err(PartitionError::OffsetOutOfRange { .. }) => fetched.outcome = FetchOutcome::OffsetOutOfRange,
        Err(_) => return fetched,
    }
    fetched.high_watermark = p.high_watermark() as i64;
    fetched.log_start_offset = p.log_start_offset() as i64;
    fetched
}

/// The controller: heartbeats keep sessions (and unfence), silent replicas are fenced,
/// AlterPartition decided; the partition's state pushed to every replica.
async fn controller(w: Rc<World>) {
    {
        let mut c = w.controller.borrow_mut();
        let now = platform::Instant::now();
        c.heard = (1..=REPLICAS).map(|a| (node(a), now)).collect();
    }
    {
        let w = w.clone();
        platform::spawn_local(async move {
            loop {
                platform::sleep(Duration::from_millis(10)).await;
                let image = w.controller.borrow().image.clone();
                for a in 1..=REPLICAS {
                    w.net.send(CONTROLLER, a, Msg::State { image: image.clone() });
                }
                let now = platform::Instant::now();
                let mut c = w.controller.borrow_mut();
                let expired: Vec<NodeId> = c
                    .live()
                    .into_iter()
                    .filter(|n| c.heard.get(n).is_none_or(|h| now.duration_since(*h) > SESSION))
                    .collect();
                for n in expired {
                    let records = brokers::fence(&c.image, n);
                    c.apply(records);
                }
                // A replica a reassignment adds back starts empty, as a broker opens a new one.
                let listed = c.partition().replicas;
                drop(c);
                for a in 1..=REPLICAS {
                    let r = &w.replicas[a as usize - 1];
                    if r.removed.get() && listed.contains(&node(a)) {
                        r.removed.set(false);
                        r.damaged.set(false);
                        w.net.clear_inbox(a);
                        boot(&w, a);
                    }
                }
            }
        })
        .detach();
    }
    loop {
        let (from, msg) = w.net.recv(CONTROLLER).await;
        let n = node(from);
        let mut c = w.controller.borrow_mut();
        match msg {
            Msg::Heartbeat { incarnation, damaged } => {
                let incarnation = [incarnation; 16];
                if c.image.brokers()[&n].incarnation != incarnation {
                    // A new process: registered fenced (its leadership moves away, as in production).
                    let registration = Registration { node: n, incarnation, listeners: Vec::new(), rack: None };
                    let epoch = c.next_offset as i64;
                    match brokers::register(&c.image, &registration, epoch, false) {
                        Ok(records) => c.apply(records),
                        Err(e) => {
                            drop(c);
                            w.violate(format!("registration of replica {from} refused: {e}"));
                            continue;
                        }
                    }
                }
                c.heard.insert(n, platform::Instant::now());
                let epoch = c.epoch(n);
                let offline: &[PartitionId] = if damaged { &[PARTITION] } else { &[] };
                if let Ok(records) = brokers::heartbeat(&c.image, n, epoch, true, false, offline) {
                    c.apply(records);
                }
            }
            Msg::Alter { proposal } => {
                let epoch = c.epoch(n);
                let (records, mut outcomes) = isr::alter_isr(&c.image, n, epoch, std::slice::from_ref(&proposal));
                c.apply(records);
                let outcome = outcomes.pop().expect("one outcome");
                drop(c);
                w.net.send(CONTROLLER, from, Msg::Altered { proposal, outcome });
            }
            _ => {}
        }
    }
}

/// Checks the invariants on every live replica.
async fn observe(w: &Rc<World>) {
    for (i, r) in w.replicas.iter().enumerate() {
        let address = i as u32 + 1;
        if !r.alive.get() {
            continue;
        }
        let Some(p) = r.partition.borrow().clone() else { continue };
        if p.log().failed().is_some() {
            continue;
        }
        let hw = p.high_watermark();
        if p.role() == Role::Leader {
            let mut seen = w.leader_hw.borrow_mut();
            let max = seen.entry((address, p.leader_epoch().0)).or_insert(hw);
            if hw < *max {
                w.violate(format!(
                    "replica {address} leading at epoch {} moved its high watermark back from {max} to {hw}",
                    p.leader_epoch().0
                ));
            }
            *max = (*max).max(hw);
        }
        let from = r.checked_to.get().min(hw);
        for (offset, id) in batches(p.log(), from, hw).await {
            let mut committed = w.committed.borrow_mut();
            match committed.get(&offset) {
                Some(other) if *other != id => w.violate(format!(
                    "replica {address} holds batch {id} at offset {offset} below its high watermark {hw}; batch {other} was committed there"
                )),
                Some(_) => {}
                None => {
                    committed.insert(offset, id);
                }
            }
        }
        r.checked_to.set(hw);
    }
}

async fn client(w: Rc<World>, batches: u64) {
    let answers: Rc<RefCell<HashMap<u64, Option<u64>>>> = Rc::default();
    {
        let (w, answers) = (w.clone(), answers.clone());
        spawn_in_group(CLIENT, async move {
            loop {
                if let (_, Msg::Produced { id, base_offset }) = w.net.recv(CLIENT).await {
                    answers.borrow_mut().insert(id, base_offset);
                }
            }
        });
    }
    let mut request = 0u64;
    let mut id = 0;
    // However the run goes (a mutation may keep the replicas from ever agreeing), the producer
    // stops after this much virtual time, so every seed ends soon.
    let deadline = platform::Instant::now() + Duration::from_secs(60);
    // Batch after batch, at least `batches` and until the faults are over, so that faults meet
    // acknowledgements in flight.
    while (id < batches || !w.faults_over.get()) && platform::Instant::now() < deadline {
        id += 1;
        let bytes = Bytes::from(build::batch(&[format!("v{id}").as_bytes()], id as i64));
        for _attempt in 0..50 {
            let Some(leader) = w.controller.borrow().partition().leader else {
                platform::sleep(Duration::from_millis(20)).await;
                continue;
            };
            request += 1;
            w.net.send(CLIENT, leader.0 as u32, Msg::Produce { id: request, bytes: bytes.clone() });
            let mut waited = 0;
            let answer = loop {
                platform::sleep(Duration::from_millis(5)).await;
                waited += 5;
                if let Some(a) = answers.borrow_mut().remove(&request) {
                    break a;
                }
                if waited > 1000 {
                    break None;
                }
            };
            if let Some(offset) = answer {
                w.acked.borrow_mut().entry(id).or_default().push(offset);
                break;
            }
            platform::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn kill(w: &World, sim: &Sim, address: u32) {
    let r = &w.replicas[address as usize - 1];
    if !r.alive.get() {
        return;
    }
    r.alive.set(false);
    *r.partition.borrow_mut() = None;
    // A restarted process reopens its storage as new (the documented repair of a damaged
    // replica: restart the broker); a rebuild deletes it first.
    r.damaged.set(false);
    sim.kill_group(address);
    w.net.clear_inbox(address);
    SimDisk::crash_under(&dir(address));
}

/// Deletes a damaged replica's files and starts it again, empty, from outside its own tasks
/// (which go with it).
fn rebuild(w: &Rc<World>, address: u32) {
    let w = w.clone();
    spawn_in_group(CLIENT + address, async move {
        if w.verbose {
            println!("    {:?} rebuild replica {address}", platform::Instant::now() - platform::Instant::zero());
        }
        kill(&w, &w.sim, address);
        SimDisk::remove_under(&dir(address));
        w.rebuilds.set(w.rebuilds.get() + 1);
        boot(&w, address);
    });
}

/// Deletes a replica a reassignment moved away, from outside its own tasks.
fn drop_replica(w: &Rc<World>, address: u32) {
    let w = w.clone();
    spawn_in_group(CLIENT + address, async move {
        if w.verbose {
            println!(
                "    {:?} replica {address} moved away: deleted",
                platform::Instant::now() - platform::Instant::zero()
            );
        }
        kill(&w, &w.sim, address);
        SimDisk::remove_under(&dir(address));
        let r = &w.replicas[address as usize - 1];
        r.removed.set(true);
        r.dropping.set(false);
        w.removals.set(w.removals.get() + 1);
    });
}

/// A reassignment (or with `None` a cancel) decided by the controller, as AlterPartitionReassignments.
fn reassign_to(w: &World, target: Option<&[NodeId]>) -> bool {
    let mut c = w.controller.borrow_mut();
    match reassign::alter(&c.image, PARTITION, target, true) {
        Ok(records) => {
            c.apply(records);
            true
        }
        Err(_) => false,
    }
}

/// After the faults: a replica still damaged (the last in-sync one, never rebuilt) is
/// restarted, the operator's repair; it recovers what it had made durable.
fn repair(w: &Rc<World>) {
    for address in 1..=REPLICAS {
        let r = &w.replicas[address as usize - 1];
        if r.damaged.get() && !r.rebuilding.get() {
            kill(w, &w.sim, address);
            boot(w, address);
        }
    }
}

async fn nemesis(w: Rc<World>, sim: Rc<Sim>, rounds: u64) {
    for _ in 0..rounds {
        platform::sleep(Duration::from_millis(sim.rng(|r| r.between(100, 600)))).await;
        let (what, victim) = sim.rng(|r| (r.below(10), r.between(1, REPLICAS as u64) as u32));
        match what {
            0..=1 => {
                if w.verbose {
                    println!("    {:?} kill replica {victim}", platform::Instant::now() - platform::Instant::zero());
                }
                kill(&w, &sim, victim);
                w.kills.set(w.kills.get() + 1);
                platform::sleep(Duration::from_millis(sim.rng(|r| r.between(10, 600)))).await;
                boot(&w, victim);
            }
            2..=6 => {
                // Mostly at the moment a leader acknowledges a batch: what acks=all promised
                // must then be on the disks of every in-sync replica.
                if sim.rng(|r| r.chance(0.8)) {
                    // The producer's acknowledgement, not the leader's: one in flight when the
                    // leader dies is never seen.
                    let acks = w.acked.borrow().len();
                    for _ in 0..20_000 {
                        if w.acked.borrow().len() != acks {
                            break;
                        }
                        platform::sleep(Duration::from_micros(25)).await;
                    }
                }
                if w.verbose {
                    let logs: Vec<(u64, u64, u64)> = w
                        .replicas
                        .iter()
                        .filter_map(|r| r.partition.borrow().clone())
                        .map(|p| (p.log_end_offset(), p.log().durable_offset(), p.high_watermark()))
                        .collect();
                    println!(
                        "    {:?} power loss (log end, durable, high watermark of each: {logs:?})",
                        platform::Instant::now() - platform::Instant::zero()
                    );
                }
                for a in 1..=REPLICAS {
                    kill(&w, &sim, a);
                }
                w.power_losses.set(w.power_losses.get() + 1);
                platform::sleep(Duration::from_millis(sim.rng(|r| r.between(10, 800)))).await;
                let mut order: Vec<u32> = (1..=REPLICAS).collect();
                sim.rng(|r| {
                    for i in (1..order.len()).rev() {
                        order.swap(i, r.below(i as u64 + 1) as usize);
                    }
                });
                for a in order {
                    boot(&w, a);
                    platform::sleep(Duration::from_millis(sim.rng(|r| r.between(0, 200)))).await;
                }
                if w.verbose {
                    // Printed at once: a replay must run exactly as the seed did unprinted.
                    let logs: Vec<(u64, u64)> = w
                        .replicas
                        .iter()
                        .filter_map(|r| r.partition.borrow().clone())
                        .map(|p| (p.log_end_offset(), p.high_watermark()))
                        .collect();
                    println!("      after it: {:?}; logs {logs:?}", w.controller.borrow().partition());
                }
            }
            7 if !w.replicas[victim as usize - 1].damaged.get() && w.replicas[victim as usize - 1].alive.get() => {
                if w.verbose {
                    println!("    {:?} damage replica {victim}", platform::Instant::now() - platform::Instant::zero());
                }
                w.replicas[victim as usize - 1].damaged.set(true);
                w.damages.set(w.damages.get() + 1);
            }
            8 => {
                // An operator's move: two or three of the replicas in some order, or a cancel.
                let target: Option<Vec<NodeId>> = sim.rng(|r| {
                    if r.chance(0.2) {
                        return None;
                    }
                    let mut all: Vec<NodeId> = (1..=REPLICAS).map(node).collect();
                    for i in (1..all.len()).rev() {
                        all.swap(i, r.below(i as u64 + 1) as usize);
                    }
                    all.truncate(r.between(2, REPLICAS as u64) as usize);
                    Some(all)
                });
                let done = reassign_to(&w, target.as_deref());
                if w.verbose {
                    println!(
                        "    {:?} reassign to {target:?}: {}",
                        platform::Instant::now() - platform::Instant::zero(),
                        if done { "started" } else { "refused" }
                    );
                }
                if done {
                    w.reassignments.set(w.reassignments.get() + 1);
                }
            }
            _ => {
                if w.verbose {
                    println!(
                        "    {:?} partition replica {victim}",
                        platform::Instant::now() - platform::Instant::zero()
                    );
                }
                for other in (0..=CLIENT).filter(|o| *o != victim) {
                    if other != CLIENT || sim.rng(|r| r.chance(0.5)) {
                        w.net.partition(victim, other);
                    }
                }
                w.partitions.set(w.partitions.get() + 1);
                platform::sleep(Duration::from_millis(sim.rng(|r| r.between(50, 700)))).await;
                w.net.heal();
            }
        }
    }
}

pub fn run_seed(seed: u64, verbose: bool) -> Result<String, String> {
    let sim = Rc::new(Sim::new(seed));
    // A disk whose fdatasync is slow and that keeps few unsynced writes through a crash: the
    // window in which a replica holds what it has not made durable is wide.
    SimDisk::reset(DiskFaults { keep_unsynced: 0.2, sync_latency_us: (500, 4000), ..DiskFaults::default() });
    for a in 1..=REPLICAS {
        SimDisk::mkdir_durable(Path::new(&format!("/r{a}")));
    }
    let net_faults = sim.rng(|r| NetFaults {
        delay_us: (50, r.between(300, 3000)),
        drop: if r.chance(0.5) { 0.02 } else { 0.0 },
        duplicate: if r.chance(0.5) { 0.02 } else { 0.0 },
        ordered: r.chance(0.5),
    });
    let config = sim.rng(|r| LogConfig {
        segment_bytes_max: r.between(4, 16) << 10,
        preallocate_bytes: 4096,
        batch_bytes_max: 4 << 10,
        cache_bytes_max: (r.between(0, 16) << 10) as usize,
        durability: Durability::Sync,
        retention_age_ms_max: None,
        retention_bytes_max: None,
        ..LogConfig::default()
    });
    let mut ctl = Controller { image: MetadataImage::default(), next_offset: 0, heard: HashMap::new() };
    let mut records = Vec::new();
    for a in 1..=REPLICAS {
        let registration = Registration { node: node(a), incarnation: [0; 16], listeners: Vec::new(), rack: None };
        records.extend(
            brokers::register(&MetadataImage::default(), &registration, a as i64 - 1, false).expect("register"),
        );
    }
    ctl.apply(records);
    let unfence: Vec<MetadataRecord> =
        (1..=REPLICAS).map(|a| MetadataRecord::BrokerUnfenced { node: node(a), broker_epoch: a as i64 - 1 }).collect();
    ctl.apply(unfence);
    let replicas: Vec<NodeId> = (1..=REPLICAS).map(node).collect();
    ctl.apply(vec![
        MetadataRecord::TopicCreated { topic_id: TOPIC, name: "t".into(), configs: Vec::new() },
        MetadataRecord::PartitionCreated {
            partition: PARTITION,
            replicas: replicas.clone(),
            isr: replicas,
            leader: Some(node(1)),
            leader_epoch: LeaderEpoch(0),
        },
    ]);
    let world = Rc::new(World {
        net: Network::new(CLIENT + 1, net_faults),
        controller: RefCell::new(ctl),
        replicas: (0..REPLICAS)
            .map(|_| {
                Rc::new(Replica {
                    partition: RefCell::new(None),
                    fetch_id: Cell::new(0),
                    answer: RefCell::new(None),
                    checked_to: Cell::new(0),
                    alive: Cell::new(false),
                    live: RefCell::new(Vec::new()),
                    lives: Cell::new(0),
                    damaged: Rc::new(Cell::new(false)),
                    rebuilding: Cell::new(false),
                    dropping: Cell::new(false),
                    removed: Cell::new(false),
                })
            })
            .collect(),
        config,
        committed: RefCell::new(BTreeMap::new()),
        acked: RefCell::new(BTreeMap::new()),
        leader_hw: RefCell::new(HashMap::new()),
        violation: RefCell::new(None),
        verbose,
        kills: Cell::new(0),
        power_losses: Cell::new(0),
        faults_over: Cell::new(false),
        partitions: Cell::new(0),
        damages: Cell::new(0),
        rebuilds: Cell::new(0),
        reassignments: Cell::new(0),
        removals: Cell::new(0),
        sim: sim.clone(),
    });
    if verbose {
        println!("seed {seed} (replicas): network {net_faults:?}, segments of {} bytes", config.segment_bytes_max);
    }
    let batches = sim.rng(|r| r.between(40, 150));
    let rounds = sim.rng(|r| r.between(3, 12));
    let w = world.clone();
    let s = sim.clone();
    let end = sim.run(
        async move {
            spawn_in_group(CONTROLLER, controller(w.clone()));
            for a in 1..=REPLICAS {
                boot(&w, a);
            }
            let observer = {
                let w = w.clone();
                platform::spawn_local(async move {
                    loop {
                        platform::sleep(Duration::from_millis(20)).await;
                        observe(&w).await;
                    }
                })
            };
            let faults = {
                let w = w.clone();
                platform::spawn_local(async move {
                    nemesis(w.clone(), s, rounds).await;
                    w.faults_over.set(true);
                })
            };
            client(w.clone(), batches).await;
            faults.await;
            w.net.heal();
            repair(&w);
            // The operator moves the partition back onto all three replicas (again while a move
            // under way or a refusal keeps it elsewhere).
            let regrow = {
                let w = w.clone();
                platform::spawn_local(async move {
                    loop {
                        let p = w.controller.borrow().partition();
                        let target = reassign::target(&p);
                        if target.len() < REPLICAS as usize {
                            let mut full = target;
                            full.extend(
                                (1..=REPLICAS).map(node).filter(|n| !p.replicas.contains(n) || p.removing.contains(n)),
                            );
                            full.dedup();
                            reassign_to(&w, Some(&full));
                        }
                        platform::sleep(Duration::from_millis(50)).await;
                    }
                })
            };
            let outcome = converge(&w).await;
            drop(regrow);
            drop(observer);
            outcome
        },
        10_000_000,
    );
    if let Some(why) = world.violation.borrow_mut().take() {
        return Err(why);
    }
    let stored = match end {
        RunEnd::Done(Ok(stored)) => stored,
        RunEnd::Done(Err(why)) => return Err(why),
        RunEnd::OutOfSteps => return Err("replicas: ran out of steps".into()),
        RunEnd::Stalled => return Err("replicas: stalled (no task ready, no timer set)".into()),
    };
    Ok(format!(
        "replicas: {} batches acknowledged, {stored} stored; {} kills, {} power losses, {} partitions, {} damaged ({} rebuilt), {} reassignments ({} replicas deleted)",
        world.acked.borrow().len(),
        world.kills.get(),
        world.power_losses.get(),
        world.partitions.get(),
        world.damages.get(),
        world.rebuilds.get(),
        world.reassignments.get(),
        world.removals.get()
    ))
}

/// Waits until every replica is in sync with identical logs, then checks that every
/// acknowledged batch is where it was acknowledged. The number of batches stored.
async fn converge(w: &Rc<World>) -> Result<usize, String> {
    for _ in 0..500 {
        platform::sleep(Duration::from_millis(20)).await;
        let state = w.controller.borrow().partition();
        let Some(leader) = state.leader else { continue };
        if state.isr.len() != REPLICAS as usize || reassign::is_reassigning(&state) {
            continue;
        }
        let parts: Vec<Rc<Partition>> = w.replicas.iter().filter_map(|r| r.partition.borrow().clone()).collect();
        if parts.len() != REPLICAS as usize {
            continue;
        }
        let ends: Vec<(u64, u64)> = parts.iter().map(|p| (p.log_end_offset(), p.high_watermark())).collect();
        if ends.iter().any(|e| *e != ends[0] || e.0 != e.1) {
            continue;
        }
        let logs = {
            let mut logs = Vec::new();
            for p in &parts {
                logs.push(batches(p.log(), 0, p.log_end_offset()).await);
            }
            logs
        };
        if logs.iter().any(|l| *l != logs[0]) {
            return Err(format!("replicas in sync under leader {leader} hold different logs"));
        }
        let stored: HashMap<u64, Vec<u64>> = logs[0].iter().fold(HashMap::new(), |mut m, (o, id)| {
            m.entry(*id).or_default().push(*o);
            m
        });
        for (id, offsets) in w.acked.borrow().iter() {
            for offset in offsets {
                if !stored.get(id).is_some_and(|o| o.contains(offset)) {
                    return Err(format!(
                        "batch {id} was acknowledged at offset {offset} and is not there (stored at {:?})",
                        stored.get(id)
                    ));
                }
            }
        }
        return Ok(logs[0].len());
    }
    let state = w.controller.borrow().partition();
    let replicas: Vec<String> = w
        .replicas
        .iter()
        .map(|r| match r.partition.borrow().as_ref() {
            Some(p) => format!(
                "log end {} hw {} failed {} role {:?} damaged {} rebuilding {}",
                p.log_end_offset(),
                p.high_watermark(),
                p.log().failed().is_some(),
                p.role(),
                r.damaged.get(),
                r.rebuilding.get()
            ),
            None => format!(
                "down (damaged {} rebuilding {} removed {})",
                r.damaged.get(),
                r.rebuilding.get(),
                r.removed.get()
            ),
        })
        .collect();
    let offline: Vec<_> =
        w.controller.borrow().image.brokers().iter().map(|(n, b)| (*n, b.fenced, b.offline_replicas.len())).collect();
    Err(format!("the replicas did not converge within 10 s: {state:?}; replicas {replicas:?}; brokers {offline:?}"))
}
