//! One seed's world: a single-node partition (the production `PartitionLog`, its flusher,
//! producer state, leader-epoch cache and checkpoints) serving an idempotent producer over the
//! simulated network, through lives that end in crashes (the poll budget runs out at a random
//! point) or clean closes. Every open runs the real recovery code; after each, and at the end
//! of each life, the whole log is read back and checked against what the producer was told.
//!
//! Until replication exists the node is alone; the quorum and replicas join this world in the
//! next issues.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use ringtail_log::batch::{self, build};
use ringtail_log::platform::{self, DiskFaults, NetFaults, Network, RunEnd, Sim, SimDisk};
use ringtail_log::producer::SequenceError;
use ringtail_log::{BatchHeader, Durability, Faults, Flusher, LogConfig, LogError, PartitionLog};

use crate::model::{Acked, Model, Sent, Stored};

const BROKER: u32 = 0;
const CLIENT: u32 = 1;
const DIR: &str = "/data/topic-0";
/// Batches an idempotent producer keeps in flight (Kafka's limit for ordering with idempotence).
const IN_FLIGHT_MAX: usize = 5;

#[derive(Debug, Clone)]
enum Msg {
    Produce { producer_id: i64, base_sequence: i32, bytes: Bytes },
    Acked { producer_id: i64, base_sequence: i32, base_offset: u64, duplicate: bool, durable: bool },
    Refused { producer_id: i64, base_sequence: i32, expected: Option<i32>, why: String },
}

/// The producer, which outlives the broker's crashes.
#[derive(Debug, Default)]
struct Producer {
    producer_id: i64,
    next_sequence: i32,
    next_batch_id: u64,
    /// Sent and not yet answered, by sequence, with the virtual time of the last send (ms).
    unacked: BTreeMap<i32, (Sent, u64, Option<u64>)>,
    renewals: u64,
    abandoned: u64,
    /// The connections' generations when last looked at.
    links: (u64, u64),
}

impl Producer {
    /// Starts over as a new producer id (Kafka's client does on a fatal sequence error):
    /// what was not acknowledged is sent again from sequence 0.
    fn renew(&mut self) {
        self.renewals += 1;
        self.producer_id += 1;
        self.next_sequence = 0;
        let old = std::mem::take(&mut self.unacked);
        for (_, (sent, batch_id, _)) in old {
            let mut bytes = sent.bytes.to_vec();
            build::set_producer(&mut bytes, self.producer_id, 0, self.next_sequence);
            let sent = Sent {
                producer_id: self.producer_id,
                base_sequence: self.next_sequence,
                records: sent.records,
                bytes: Bytes::from(bytes),
            };
            let records = sent.records as i32;
            self.unacked.insert(self.next_sequence, (sent, batch_id, None));
            self.next_sequence += records;
        }
    }
}

struct World {
    net: Network<Msg>,
    model: RefCell<Model>,
    producer: RefCell<Producer>,
    config: LogConfig,
    faults_on: bool,
    violation: RefCell<Option<String>>,
    /// Every batch id the producer ever created, with its record count (for the duplicate check).
    batch_ids: RefCell<HashSet<u64>>,
    verbose: bool,
}

fn trace(world: &World, line: String) {
    if world.verbose {
        println!("    {:?} {line}", platform::Instant::now() - platform::Instant::zero());
    }
}

impl World {
    fn violate(&self, why: String) {
        self.violation.borrow_mut().get_or_insert(why);
    }
}

fn random_config(sim: &Sim) -> LogConfig {
    sim.rng(|r| {
        let durability = if r.chance(0.7) { Durability::Sync } else { Durability::Async };
        LogConfig {
            segment_bytes_max: r.between(16, 96) << 10,
            preallocate_bytes: r.between(1, 4) * 4096,
            index_interval_bytes: r.between(256, 4096),
            batch_bytes_max: 16 << 10,
            cache_bytes_max: (r.between(0, 32) << 10) as usize,
            read_chunk_bytes: (r.between(1, 4) * 4096) as usize,
            retention_age_ms_max: None,
            retention_bytes_max: if r.chance(0.3) { Some(r.between(32, 256) << 10) } else { None },
            durability,
            flush_bytes_min: (r.between(1, 64) << 10) as usize,
            fsync_interval_ms: r.between(5, 100),
            ..LogConfig::default()
        }
    })
}

/// Runs one seed to its end: `Ok` with a summary, or the first invariant it broke.
pub fn run_seed(seed: u64, verbose: bool) -> Result<String, String> {
    let sim = Sim::new(seed);
    let config = random_config(&sim);
    let faults_on = sim.rng(|r| r.chance(0.3));
    let disk_faults = DiskFaults { fail: if faults_on { 0.002 } else { 0.0 }, ..DiskFaults::default() };
    SimDisk::reset(disk_faults);
    // The data directory exists, durably, before the broker starts (its topic directories are
    // the log's to create and make durable).
    SimDisk::mkdir_durable(Path::new(DIR).parent().expect("a parent"));
    let net_faults = sim.rng(|r| NetFaults {
        delay_us: (10, r.between(100, 3000)),
        drop: if r.chance(0.5) { 0.05 } else { 0.0 },
        duplicate: if r.chance(0.5) { 0.05 } else { 0.0 },
        // Kafka clients talk over TCP: ordered links. (Datagram links reorder requests of one
        // connection, which no Kafka client does, and an unknown producer's first batch is
        // taken at any sequence, as in Kafka.)
        ordered: true,
    });
    let world = Rc::new(World {
        net: Network::new(2, net_faults),
        model: RefCell::new(Model::default()),
        producer: RefCell::new(Producer { producer_id: 1000, ..Producer::default() }),
        config,
        faults_on,
        violation: RefCell::new(None),
        batch_ids: RefCell::new(HashSet::new()),
        verbose,
    });
    if verbose {
        println!("seed {seed}: {config:?}\n  disk faults {disk_faults:?}\n  network {net_faults:?}");
    }
    let lives = sim.rng(|r| r.between(3, 8));
    for life in 0..=lives {
        let last = life == lives;
        if last {
            // The last life runs without injected failures to the end: everything owed is there.
            SimDisk::reset_faults(DiskFaults { fail: 0.0, ..disk_faults });
        }
        let budget = if last { u64::MAX } else { sim.rng(|r| r.between(200, 8_000)) };
        let started = sim.polls();
        let w = world.clone();
        let end = sim.run(async move { live(w, last).await }, budget);
        let polls = sim.polls() - started;
        let outcome = match end {
            RunEnd::Done(Ok(how)) => how,
            RunEnd::Done(Err(why)) => return Err(format!("life {life}: {why}")),
            RunEnd::OutOfSteps => {
                world.model.borrow_mut().crashes += 1;
                "crashed"
            }
            RunEnd::Stalled => return Err(format!("life {life}: stalled (no task ready, no timer set)")),
        };
        if let Some(why) = world.violation.borrow_mut().take() {
            return Err(format!("life {life}: {why}"));
        }
        if verbose {
            println!("  life {life}: {outcome} after {polls} polls, t={:?}", sim.elapsed());
        }
        // Whatever the life's end, the process is gone: tasks, timers and unsynced writes.
        sim.crash();
        SimDisk::crash();
        world.net.clear_inbox(BROKER);
        world.net.clear_inbox(CLIENT);
        for v in world.producer.borrow_mut().unacked.values_mut() {
            v.2 = None;
        }
    }
    let m = world.model.borrow();
    let p = world.producer.borrow();
    let (sent, dropped, duplicated) = world.net.counts();
    Ok(format!(
        "{} lives, {} crashes, {} clean closes, {} offline, {} truncations; {} acks ({} answered as duplicates), {} producer renewals, {} abandoned; network {sent} sent, {dropped} dropped, {duplicated} duplicated; {} disk failures injected; {:?} virtual",
        lives + 1,
        m.crashes,
        m.clean_closes,
        m.offline,
        m.truncations,
        m.acks,
        m.duplicates_answered,
        p.renewals,
        p.abandoned,
        SimDisk::failures(),
        sim.elapsed(),
    ))
}

/// Whether an error is one the injected faults explain (the partition goes offline; the next
/// life opens it again).
fn injected(world: &World, e: &LogError) -> bool {
    world.faults_on && (matches!(e, LogError::Io { .. }) || e.is_no_space())
}

/// Reads the whole log back as batch headers, with each batch's id (from its first record).
async fn read_all(log: &PartitionLog) -> Result<Vec<(Stored, Option<u64>)>, LogError> {
    let mut out = Vec::new();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let r = log.read(offset, 256 << 10, u64::MAX).await?;
        if r.chunks.is_empty() {
            break;
        }
        let mut bytes = Vec::with_capacity(r.bytes);
        for c in &r.chunks {
            bytes.extend_from_slice(c);
        }
        let mut at = 0;
        while at < bytes.len() {
            let header = BatchHeader::parse(&bytes[at..]).map_err(|e| LogError::Corrupt {
                path: DIR.into(),
                position: at as u64,
                reason: e.to_string(),
            })?;
            let size = header.size();
            let body = &bytes[at..at + size];
            let id = batch::records(body, &header)
                .and_then(|rs| rs.first().and_then(|r| r.value))
                .and_then(|v| std::str::from_utf8(v).ok()?.split(':').next()?.strip_prefix('b')?.parse().ok());
            out.push((Stored { header }, id));
            at += size;
        }
        if r.next_offset <= offset {
            break;
        }
        offset = r.next_offset;
    }
    Ok(out)
}

/// Reads the log and checks every invariant; returns the batches read.
async fn check(world: &World, log: &PartitionLog, when: &str) -> Result<Option<Vec<Stored>>, String> {
    let batches = match read_all(log).await {
        Ok(b) => b,
        Err(e) if injected(world, &e) => return Ok(None),
        Err(e) => return Err(format!("{when}: reading the log failed: {e}")),
    };
    // A batch the producer sent under one producer id is stored once. (Under a renewed id the
    // producer sends again what it never heard back about: at-least-once, as Kafka's client.)
    let mut ids = HashSet::new();
    for (s, id) in &batches {
        if let Some(id) = id {
            if !ids.insert((s.header.producer_id, *id)) {
                return Err(format!(
                    "{when}: batch id {id} stored twice (the second at offset {})",
                    s.header.base_offset
                ));
            }
        }
    }
    if when == "after recovery" {
        // Acknowledged but never durable, and gone in the crash: the producer was told no more.
        let present: HashSet<(i64, i32)> =
            batches.iter().map(|(s, _)| (s.header.producer_id, s.header.base_sequence)).collect();
        world.model.borrow_mut().forget_lost(&present, log.log_start_offset());
    }
    let stored: Vec<Stored> = batches.into_iter().map(|(s, _)| s).collect();
    let model = world.model.borrow();
    model
        .check_log(log.log_start_offset(), log.log_end_offset(), &stored, &log.leader_epochs())
        .map_err(|why| format!("{when}: {why}"))?;
    if let Some(saved) = model.high_watermark_saved {
        if log.log_end_offset() < saved {
            return Err(format!(
                "{when}: the log ends at {} below the high watermark {saved} saved before",
                log.log_end_offset()
            ));
        }
    }
    Ok(Some(stored))
}

/// One life of the node: open (recovering), check, maybe truncate, serve the producer for a
/// while, check, close. Returns how it ended, or the invariant broken.
async fn live(world: Rc<World>, last: bool) -> Result<&'static str, String> {
    let tick = Duration::from_millis(rng(|r| r.between(1, 10)));
    let flusher = Flusher::new(Faults::default(), tick);
    let _ticking = flusher.spawn();
    let log = match PartitionLog::open(Path::new(DIR), world.config, &flusher).await {
        Ok(log) => log,
        Err(e) if injected(&world, &e) => {
            world.model.borrow_mut().offline += 1;
            return Ok("offline at open");
        }
        Err(e) => return Err(format!("opening the log failed: {e}")),
    };
    let report = log.recovery_report();
    {
        let model = world.model.borrow();
        if let Some(saved) = model.high_watermark_saved {
            if report.high_watermark.is_none_or(|h| h < saved) {
                return Err(format!(
                    "the high watermark moved back: {saved} was saved, recovery found {:?}",
                    report.high_watermark
                ));
            }
        }
    }
    let Some(stored) = check(&world, &log, "after recovery").await? else {
        world.model.borrow_mut().offline += 1;
        return Ok("offline reading");
    };
    let epoch = {
        let mut m = world.model.borrow_mut();
        let e = m.epochs.last().map_or(1, |e| e + 1);
        m.epochs.push(e);
        e
    };
    // Sometimes cut the tail first, as a follower whose log diverged would (never below the
    // high watermark: that is committed).
    let truncate = !last && rng(|r| r.chance(0.25));
    if truncate && log.log_end_offset() > log.log_start_offset() {
        let floor = world.model.borrow().high_watermark_saved.unwrap_or(0).max(log.log_start_offset());
        let end = log.log_end_offset();
        if floor < end {
            let target = rng(|r| r.between(floor, end));
            world.model.borrow_mut().truncating(target);
            match log.truncate_to(target).await {
                Ok(new_end) => {
                    if new_end > target {
                        return Err(format!("truncate_to({target}) left the log ending at {new_end}"));
                    }
                    let cut = stored
                        .iter()
                        .filter(|s| s.header.base_offset as u64 >= new_end && s.header.producer_id >= 0)
                        .map(|s| ((s.header.producer_id, s.header.base_sequence), s.header.base_offset as u64));
                    let mut m = world.model.borrow_mut();
                    m.truncating(new_end);
                    m.truncated(cut);
                }
                Err(e) if injected(&world, &e) => {
                    world.model.borrow_mut().offline += 1;
                    return Ok("offline truncating");
                }
                Err(e) => return Err(format!("truncate_to({target}) failed: {e}")),
            }
            // The producer's acknowledged tail may be gone: it starts over under a new id.
            world.producer.borrow_mut().renew();
            check(&world, &log, "after truncating").await?;
        }
    }
    let stop = Rc::new(std::cell::Cell::new(false));
    platform::spawn_local(serve(world.clone(), log.clone(), epoch)).detach();
    platform::spawn_local(receive(world.clone())).detach();
    platform::spawn_local(save_high_watermarks(world.clone(), log.clone(), stop.clone())).detach();
    let run_for = rng(|r| r.between(20, 400));
    produce(&world, &log, Duration::from_millis(run_for)).await;
    stop.set(true);
    if log.failed().is_some() {
        world.model.borrow_mut().offline += 1;
        return Ok("offline serving");
    }
    check(&world, &log, "while serving").await?;
    match log.close(platform::wall_clock_ms()).await {
        Ok(()) => {}
        Err(e) if injected(&world, &e) => {
            world.model.borrow_mut().offline += 1;
            return Ok("offline closing");
        }
        Err(e) => return Err(format!("close failed: {e}")),
    }
    {
        let mut m = world.model.borrow_mut();
        m.durable_seen = m.durable_seen.max(log.durable_offset());
        if log.durable_offset() != log.log_end_offset() {
            return Err(format!(
                "closed with durable offset {} below the log end {}",
                log.durable_offset(),
                log.log_end_offset()
            ));
        }
        m.clean_closes += 1;
    }
    Ok("closed")
}

fn rng<T>(f: impl FnOnce(&mut platform::sim::rng::SimRng) -> T) -> T {
    platform::sim::executor::with_rng(f)
}

/// The broker: appends each produce request and answers once it is durable (sync) or written
/// (async), as the produce path does.
async fn serve(world: Rc<World>, log: Rc<PartitionLog>, epoch: i32) {
    loop {
        let (from, msg) = world.net.recv(BROKER).await;
        let Msg::Produce { producer_id, base_sequence, bytes } = msg else { continue };
        let (world, log) = (world.clone(), log.clone());
        platform::spawn_local(async move {
            let refuse = |expected, why: String| Msg::Refused { producer_id, base_sequence, expected, why };
            let reply = match log.append(bytes, epoch, platform::wall_clock_ms()) {
                Ok(info) => {
                    let sync = log.config().durability == Durability::Sync;
                    let waited = match sync {
                        true => log.wait_durable_since(info.last_offset, info.tail_epoch).await,
                        false => log.wait_written_since(info.last_offset, info.tail_epoch).await,
                    };
                    match waited {
                        Ok(()) => Msg::Acked {
                            producer_id,
                            base_sequence,
                            base_offset: info.base_offset,
                            duplicate: info.duplicate,
                            durable: sync,
                        },
                        Err(e) => refuse(None, e.to_string()),
                    }
                }
                Err(LogError::Sequence(SequenceError::OutOfOrder { expected, .. })) => {
                    refuse(Some(expected), format!("out of order at log end {}", log.log_end_offset()))
                }
                Err(e) => refuse(None, e.to_string()),
            };
            world.net.send(BROKER, from, reply);
        })
        .detach();
    }
}

/// The producer's receiving side: acknowledgements into the model, refusals into retries.
async fn receive(world: Rc<World>) {
    loop {
        let (_, msg) = world.net.recv(CLIENT).await;
        let mut p = world.producer.borrow_mut();
        match msg {
            Msg::Acked { producer_id, base_sequence, base_offset, duplicate, durable } => {
                let sent = match p.unacked.get(&base_sequence) {
                    Some((sent, _, _)) if sent.producer_id == producer_id => sent.clone(),
                    // An answer to a copy already answered (the network duplicated it), or to
                    // a producer id since renewed: the model already has it, or it is stale.
                    _ => continue,
                };
                p.unacked.remove(&base_sequence);
                trace(
                    &world,
                    format!(
                        "producer {producer_id}: sequence {base_sequence} acked at {base_offset}{}",
                        if duplicate { " (duplicate)" } else { "" }
                    ),
                );
                if let Err(why) = world.model.borrow_mut().ack(&sent, Acked { base_offset, durable }, duplicate) {
                    world.violate(why);
                }
            }
            Msg::Refused { producer_id, base_sequence, expected, why } => {
                if producer_id != p.producer_id {
                    continue;
                }
                let lowest = p.unacked.keys().next().copied();
                match expected {
                    // The broker expects an earlier sequence than the oldest unanswered batch:
                    // batches acknowledged before (not durably) were lost. Start over.
                    Some(e) if lowest == Some(base_sequence) && e < base_sequence => {
                        trace(&world, format!("producer {producer_id}: sequence {base_sequence} refused, {e} expected: renewing ({why})"));
                        p.renew()
                    }
                    // It expects a later one: this batch is in the log but no longer
                    // recognised as a retry. Kafka's client fails it; so does this one.
                    Some(e) if lowest == Some(base_sequence) && e > base_sequence => {
                        trace(&world, format!("producer {producer_id}: sequence {base_sequence} refused, {e} expected: abandoned ({why})"));
                        p.unacked.remove(&base_sequence);
                        p.abandoned += 1;
                    }
                    // Otherwise retried on the next round (a reordered send, or no space).
                    _ => {
                        if let Some(v) = p.unacked.get_mut(&base_sequence) {
                            v.2 = None;
                        }
                    }
                }
            }
            Msg::Produce { .. } => {}
        }
    }
}

/// Saves the durable offset as the high watermark now and then (a single node's high
/// watermark is its durable end), as the replica layer will.
async fn save_high_watermarks(world: Rc<World>, log: Rc<PartitionLog>, stop: Rc<std::cell::Cell<bool>>) {
    while !stop.get() && log.failed().is_none() {
        platform::sleep(Duration::from_millis(rng(|r| r.between(2, 20)))).await;
        let hw = log.durable_offset();
        {
            let mut m = world.model.borrow_mut();
            m.durable_seen = m.durable_seen.max(hw);
        }
        if log.save_high_watermark(hw).await.is_ok() {
            let mut m = world.model.borrow_mut();
            m.high_watermark_saved = Some(m.high_watermark_saved.map_or(hw, |h| h.max(hw)));
        }
    }
}

/// The producer's sending side for `run_for` of virtual time, then until everything sent is
/// answered (or a while has passed).
async fn produce(world: &Rc<World>, log: &PartitionLog, run_for: Duration) {
    let start = platform::Instant::now();
    let retry_after_ms = 30;
    loop {
        let now = platform::Instant::now();
        let producing = now - start < run_for;
        if !producing && (world.producer.borrow().unacked.is_empty() || now - start > run_for * 4) {
            break;
        }
        if log.failed().is_some() {
            break;
        }
        let now_ms = (now - start).as_millis() as u64;
        let sends: Vec<Sent> = {
            let mut p = world.producer.borrow_mut();
            // A broken connection fails every request in flight on it at once: the client sends
            // them all again, in order, before anything new (as Kafka's client does).
            let links = (world.net.generation(CLIENT, BROKER), world.net.generation(BROKER, CLIENT));
            if p.links != links {
                p.links = links;
                p.unacked.values_mut().for_each(|v| v.2 = None);
            }
            if producing && p.unacked.len() < IN_FLIGHT_MAX {
                let records = rng(|r| r.between(1, 6)) as usize;
                let value_len = rng(|r| r.between(8, 600)) as usize;
                let id = p.next_batch_id;
                p.next_batch_id += 1;
                world.batch_ids.borrow_mut().insert(id);
                let values: Vec<Vec<u8>> = (0..records)
                    .map(|i| {
                        let mut v = format!("b{id}:{i}:").into_bytes();
                        v.resize(value_len.max(v.len()), b'x');
                        v
                    })
                    .collect();
                let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
                let mut bytes = build::batch(&refs, platform::wall_clock_ms());
                let (pid, seq) = (p.producer_id, p.next_sequence);
                build::set_producer(&mut bytes, pid, 0, seq);
                let sent =
                    Sent { producer_id: pid, base_sequence: seq, records: records as u64, bytes: Bytes::from(bytes) };
                p.next_sequence += records as i32;
                p.unacked.insert(seq, (sent, id, None));
            }
            p.unacked
                .values_mut()
                .filter(|(_, _, at)| at.is_none_or(|t| now_ms >= t + retry_after_ms))
                .map(|(sent, _, at)| {
                    *at = Some(now_ms);
                    sent.clone()
                })
                .collect()
        };
        for s in sends {
            trace(
                world,
                format!("producer {}: sends sequence {} ({} records)", s.producer_id, s.base_sequence, s.records),
            );
            world.net.send(
                CLIENT,
                BROKER,
                Msg::Produce { producer_id: s.producer_id, base_sequence: s.base_sequence, bytes: s.bytes },
            );
        }
        platform::sleep(Duration::from_micros(rng(|r| r.between(100, 3000)))).await;
    }
}
