//! The controller quorum under the simulation: three controllers (the production quorum code:
//! openraft on our runtime adapter, the log storage and state machine on platform files, the
//! RPC frames, and each controller's `ControllerService` with its session checks) talking over
//! the simulated network, while a client writes record batches through whoever leads (by
//! `ControllerService::write`, as every write in production goes) and brokers ([`broker`])
//! heartbeat, follow the committed metadata and propose topics through the service's broker
//! frames. Faults: links cut and healed (between controllers, and between a broker and a
//! controller), messages delayed, dropped and duplicated, single controllers killed (their
//! tasks dropped, their directory through a power loss) and restarted from their directories,
//! and brokers paused (their sessions expire) or restarted as new incarnations.
//!
//! Invariants, checked as the run goes and at its end: at most one leader per term; no two
//! controllers ever applied different states at the same log index (every applied state is a
//! prefix of the committed log); after healing, every controller converges to the same image,
//! and it holds every batch whose write was acknowledged. On the metadata records
//! ([`committed`]): the controllers agree on the record at every offset, and an image one
//! serves equals the records' image at its offset; partitions' leader epochs never go down and
//! go up with every change of leader; every broker's copy is a prefix of the committed records,
//! and an image a broker fetched is the committed image at its offset; `Proposed { first, last
//! }` means the proposal's records are at exactly those offsets, right after the offset it was
//! decided at; a heartbeat's broker epoch is the offset of this incarnation's registration; a
//! broker answered fenced for its controlled shutdown is never unfenced again; no two brokers
//! ever lead one partition at the same leader epoch while unfenced by their copies. At the end
//! every broker has caught up with the converged image, registered and unfenced.

mod broker;
mod committed;
mod ending;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::{poll_fn, Future};
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use ringtail_log::platform::sim::executor::{spawn_in_group, with_rng};
use ringtail_log::platform::{self, DiskFaults, NetFaults, Network, RunEnd, Sim, SimDisk};
use ringtail_replication::ids::{NodeId, TopicId};
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::quorum::broker_wire::{is_broker_frame, BrokerResponse};
use ringtail_replication::quorum::{
    initialize, start_node, ControllerNode, ControllerService, QuorumConfig, QuorumNode, RecordBatch, ServiceTimings,
    Transport, TransportError,
};

use broker::{Broker, BrokerStats};
use committed::{Committed, MetadataCopy, Proposal};

const NODES: u64 = 3;
/// Brokers beside the controllers (each its own network node and task group, after them).
const BROKERS_MIN: u64 = 2;
const BROKERS_MAX: u64 = 4;

#[derive(Debug, Clone)]
enum Msg {
    Request { id: u64, bytes: Rc<Vec<u8>> },
    Response { id: u64, bytes: Rc<Vec<u8>> },
}

/// One node's end of the network (a controller's, or a broker's): requests out with a
/// correlation id, answers matched.
struct Endpoint {
    me: u32,
    net: Network<Msg>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Rc<RefCell<Answer>>>>,
}

impl Endpoint {
    /// Node `me`'s end, numbering its calls from `first_id`. A process that restarts takes ids
    /// it never used: answers to its last life's calls may still arrive, and must match nothing
    /// (as on a new connection).
    fn new(me: u32, net: Network<Msg>, first_id: u64) -> Endpoint {
        Endpoint { me, net, next_id: Cell::new(first_id), pending: RefCell::new(HashMap::new()) }
    }

    /// Sends `request` to `target`: the call's id, and its answer once it comes (never, if
    /// the request or the answer is lost: the caller bounds the wait).
    fn call(&self, target: u32, request: Vec<u8>) -> (u64, impl Future<Output = Vec<u8>> + 'static) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let slot = Rc::new(RefCell::new(Answer::default()));
        self.pending.borrow_mut().insert(id, slot.clone());
        self.net.send(self.me, target, Msg::Request { id, bytes: Rc::new(request) });
        let answer = poll_fn(move |cx| {
            let mut answer = slot.borrow_mut();
            match answer.bytes.take() {
                Some(bytes) => Poll::Ready(bytes),
                None => {
                    answer.waiter = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        (id, answer)
    }

    /// Gives up waiting for call `id`.
    fn forget(&self, id: u64) {
        self.pending.borrow_mut().remove(&id);
    }

    /// The answer to call `id` came: its caller wakes (a duplicate finds no caller).
    fn answer(&self, id: u64, bytes: &[u8]) {
        let slot = self.pending.borrow_mut().remove(&id);
        if let Some(slot) = slot {
            let waiter = {
                let mut answer = slot.borrow_mut();
                answer.bytes = Some(bytes.to_vec());
                answer.waiter.take()
            };
            if let Some(w) = waiter {
                w.wake();
            }
        }
    }
}

/// A call's answer, once it comes, and who waits for it.
#[derive(Default)]
struct Answer {
    bytes: Option<Vec<u8>>,
    waiter: Option<Waker>,
}

/// `future`, or `None` once `limit` of virtual time has passed first.
async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut sleep = pin!(platform::sleep(limit));
    poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

impl Transport for Endpoint {
    fn send(
        &self,
        target: u64,
        _node: &ControllerNode,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> {
        // openraft bounds the wait (its RPC timeouts): an answer that never comes is a dropped
        // message or a dead peer.
        let (_, answer) = self.call(target as u32, request);
        async move { Ok(answer.await) }
    }
}

struct Controller {
    node: Option<QuorumNode>,
    service: Option<Rc<ControllerService>>,
    endpoint: Rc<Endpoint>,
    dir: PathBuf,
    alive: bool,
}

struct World {
    net: Network<Msg>,
    controllers: RefCell<BTreeMap<u64, Controller>>,
    config: QuorumConfig,
    /// Term -> the controller that led it.
    leaders: RefCell<BTreeMap<u64, u64>>,
    /// Log index -> the image a controller had applied up to it (the first seen).
    applied: RefCell<BTreeMap<u64, MetadataImage>>,
    /// Batches whose write was acknowledged.
    acknowledged: RefCell<Vec<u64>>,
    violation: RefCell<Option<String>>,
    kills: Cell<u64>,
    partitions: Cell<u64>,
    storage_failures: Cell<u64>,
    verbose: bool,
    /// The brokers, by network address (= node id and task group), their current lives.
    brokers: RefCell<BTreeMap<u32, Rc<Broker>>>,
    /// The committed metadata records seen, and the checks on brokers waiting for them.
    committed: RefCell<Committed>,
    timings: ServiceTimings,
    /// A broker's heartbeat pace once unfenced.
    heartbeat_interval: Duration,
    /// How long a broker waits for a controller's answer.
    call_timeout: Duration,
    /// Set at the end of the faults: brokers finish their proposal in progress and stop.
    stop_proposals: Cell<bool>,
    broker_stats: BrokerStats,
    broker_count: u32,
}

impl World {
    fn violate(&self, why: String) {
        self.violation.borrow_mut().get_or_insert(why);
    }

    /// The furthest metadata offset any live controller applied.
    fn applied_max(&self) -> Option<u64> {
        let controllers = self.controllers.borrow();
        let live = controllers.values().filter(|c| c.alive).filter_map(|c| c.node.as_ref());
        live.map(|n| n.state_machine.state().image.applied).max().flatten()
    }
}

fn batch(n: u64) -> RecordBatch {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    RecordBatch(vec![MetadataRecord::TopicCreated {
        topic_id: TopicId(id),
        name: format!("b{n}"),
        configs: Vec::new(),
    }])
}

fn voters() -> BTreeMap<u64, ControllerNode> {
    (1..=NODES).map(|id| (id, ControllerNode::new(format!("controller-{id}:9093")))).collect()
}

/// Serves one controller's incoming messages, as its listener does: Raft's requests through
/// `serve`, brokers' through its service; and answers to its own calls.
async fn receive(world: Rc<World>, id: u64, endpoint: Rc<Endpoint>) {
    loop {
        let (from, msg) = world.net.recv(id as u32).await;
        match msg {
            Msg::Request { id: call, bytes } => {
                let service = world.controllers.borrow().get(&id).and_then(|c| c.service.clone());
                let Some(service) = service else { continue };
                let net = world.net.clone();
                platform::spawn_local(async move {
                    let answer = match is_broker_frame(&bytes) {
                        true => service.handle(&bytes).await,
                        false => service.serve_raft(&bytes).await,
                    };
                    net.send(id as u32, from, Msg::Response { id: call, bytes: Rc::new(answer) });
                })
                .detach();
            }
            Msg::Response { id: call, bytes } => endpoint.answer(call, &bytes),
        }
    }
}

/// Starts (or restarts) controller `id` in its own task group, from its directory.
fn boot(world: &Rc<World>, id: u64, first: bool) {
    let w = world.clone();
    spawn_in_group(id as u32, async move {
        let (endpoint, dir) = {
            let cs = w.controllers.borrow();
            let c = &cs[&id];
            (c.endpoint.clone(), c.dir.clone())
        };
        endpoint.pending.borrow_mut().clear();
        let mut tries = 0;
        let node = loop {
            match start_node(id, &dir, &w.config, endpoint.clone()).await {
                Ok(n) => break n,
                // An injected I/O error: the start is tried again, as a supervisor would.
                Err(e) if !e.to_string().contains("damaged") && tries < 50 => {
                    tries += 1;
                    platform::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    if std::env::var_os("SIM_DEBUG").is_some() {
                        let bytes = SimDisk::read_file(&dir.join("log")).unwrap_or_default();
                        for chunk in bytes.chunks(32).enumerate() {
                            eprintln!("{:5}: {:02x?}", chunk.0 * 32, chunk.1);
                        }
                    }
                    w.violate(format!(
                        "controller {id} cannot start from its directory: {e} ({} disk failures injected so far)",
                        SimDisk::failures()
                    ));
                    return;
                }
            }
        };
        if first {
            // Every voter initializes with the same voters (KRaft's static voter list); all
            // but the first are refused, which is expected.
            let _ = initialize(&node.raft, voters()).await;
        }
        let service = ControllerService::new(id, node.clone(), w.timings);
        platform::spawn_local(service.clone().run_sessions()).detach();
        w.committed.borrow_mut().restarted(id);
        if let Some(c) = w.controllers.borrow_mut().get_mut(&id) {
            c.node = Some(node);
            c.service = Some(service);
            c.alive = true;
        }
        receive(w, id, endpoint).await;
    });
}

/// Kills controller `id`: its tasks go, its directory loses power. Looked at first, so what
/// it applied is seen before it goes.
fn kill(world: &Rc<World>, sim: &Sim, id: u64) {
    observe(world);
    let dir = {
        let mut cs = world.controllers.borrow_mut();
        let c = cs.get_mut(&id).expect("a controller");
        c.alive = false;
        c.node = None;
        c.service = None;
        c.dir.clone()
    };
    if world.verbose {
        let leader = world.leaders.borrow().iter().next_back().map(|(t, l)| (*t, *l));
        println!(
            "    {:?} kill controller {id} (last leader seen {leader:?})",
            platform::Instant::now() - platform::Instant::zero()
        );
    }
    sim.kill_group(id as u32);
    world.net.clear_inbox(id as u32);
    SimDisk::crash_under(&dir);
    world.kills.set(world.kills.get() + 1);
}

/// Kills the broker at `address`: its tasks go (its copy stays with its entry, for a restart
/// that keeps it). Looked at first, like a controller.
fn kill_broker(world: &World, sim: &Sim, address: u32) {
    observe(world);
    if let Some(b) = world.brokers.borrow().get(&address) {
        b.alive.set(false);
    }
    if world.verbose {
        println!("    {:?} kill broker {address}", platform::Instant::now() - platform::Instant::zero());
    }
    sim.kill_group(address);
    world.net.clear_inbox(address);
}

/// Records each live controller's role and applied state, checking the invariants.
fn observe(world: &World) {
    let nodes: Vec<(u64, QuorumNode)> = world
        .controllers
        .borrow()
        .iter()
        .filter_map(|(id, c)| c.node.clone().filter(|_| c.alive).map(|n| (*id, n)))
        .collect();
    for (id, node) in nodes.iter().map(|(id, n)| (*id, n)) {
        let m = node.metrics();
        if m.state.is_leader() {
            let term = m.current_term;
            let mut leaders = world.leaders.borrow_mut();
            match leaders.get(&term) {
                Some(other) if *other != id => {
                    world.violate(format!("controllers {other} and {id} both led term {term}"));
                }
                _ => {
                    leaders.insert(term, id);
                }
            }
        }
        let state = node.state_machine.state();
        if let Some(log_id) = state.last_applied {
            let mut applied = world.applied.borrow_mut();
            match applied.get(&log_id.index) {
                Some(image) if *image != state.image => world.violate(
                    format!(
                        "{:?} / {:?}: ",
                        image.topics().map(|t| t.name.to_string()).collect::<Vec<_>>(),
                        state.image.topics().map(|t| t.name.to_string()).collect::<Vec<_>>()
                    ) + &format!(
                        "controller {id} applied a different state at log index {} than another controller",
                        log_id.index
                    ),
                ),
                Some(_) => {}
                None => {
                    if world.verbose {
                        println!(
                            "    {:?} controller {id} (term {}, {:?}) first applied index {} ({})",
                            platform::Instant::now() - platform::Instant::zero(),
                            m.current_term,
                            m.state,
                            log_id.index,
                            log_id
                        );
                    }
                    applied.insert(log_id.index, state.image.clone());
                }
            }
        }
    }
    if let Err(why) = observe_metadata(world, nodes) {
        world.violate(why);
    }
}

/// Compares the controllers' applied records (the furthest first, so the others are compared
/// with records seen) and the live brokers' copies with the committed records, and checks
/// what waited for them.
fn observe_metadata(world: &World, mut nodes: Vec<(u64, QuorumNode)>) -> Result<(), String> {
    let mut committed = world.committed.borrow_mut();
    nodes.sort_by_key(|(id, n)| (std::cmp::Reverse(n.state_machine.state().image.applied), *id));
    for (id, node) in &nodes {
        committed.observe_controller(*id, &node.state_machine)?;
    }
    for b in world.brokers.borrow().values().filter(|b| b.alive.get()) {
        let mut copy = b.copy.borrow_mut();
        committed.check_copy(b.node, &mut copy)?;
        committed.check_leadership(b.node, b.incarnation, &mut copy)?;
    }
    committed.settle()
}

/// The client: writes batch after batch through whoever leads, retrying while leadership moves.
/// Each write goes through the leader's `ControllerService::write` (serialized with the
/// brokers' changes, as every write in production is), in the leader's task group, so it dies
/// with the leader.
async fn client(world: Rc<World>, batches: u64) {
    let mut n = 0;
    while n < batches {
        let leader = {
            let cs = world.controllers.borrow();
            cs.iter()
                .filter(|(_, c)| c.alive)
                .filter_map(|(id, c)| c.service.clone().map(|s| (*id, s)))
                .find(|(_, service)| service.node().metrics().state.is_leader())
        };
        let Some((id, service)) = leader else {
            platform::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let records = batch(n).0;
        let write = spawn_in_group(id as u32, async move { service.write(move |_| Ok(records)).await });
        // A write whose leader dies with it never answers: given up after a while. A write
        // not acknowledged has an unknown outcome (it may still commit), so the client moves
        // on to the next batch and only acknowledged ones are owed.
        match within(Duration::from_secs(2), write).await {
            Some(Some(Ok(Some(_)))) => world.acknowledged.borrow_mut().push(n),
            _ => {
                platform::sleep(Duration::from_millis(2)).await;
            }
        }
        n += 1;
    }
}

/// Forms the cluster as the node that forms it does: the quorum's first change (the cluster
/// id), proposed on the empty metadata to whoever leads, until it is answered `Proposed` or
/// `Stale` (written already). Nothing else is written before it.
async fn form_cluster(world: &World) {
    let first = vec![MetadataRecord::ClusterCreated { cluster_id: "sim".into() }];
    loop {
        let leader = {
            let cs = world.controllers.borrow();
            cs.iter()
                .filter(|(_, c)| c.alive)
                .filter_map(|(id, c)| c.service.clone().map(|s| (*id, s)))
                .find(|(_, service)| service.node().metrics().state.is_leader())
        };
        if let Some((id, service)) = leader {
            let records = first.clone();
            let propose = spawn_in_group(id as u32, async move { service.propose(None, records).await });
            match within(Duration::from_secs(2), propose).await {
                Some(Some(BrokerResponse::Proposed { first: at, last })) => {
                    let proposal = Proposal { broker: NodeId(-1), expected: None, first: at, last, records: first };
                    world.committed.borrow_mut().proposed(proposal);
                    return;
                }
                Some(Some(BrokerResponse::Stale { .. })) => return,
                _ => {}
            }
        }
        platform::sleep(Duration::from_millis(20)).await;
    }
}

/// Restarts controllers that stopped on a storage error: their process would exit and be
/// started again. Counted as kills (the directory goes through a power loss too).
async fn restart_failed(world: Rc<World>, sim_kill: Rc<dyn Fn(u64)>) {
    loop {
        platform::sleep(Duration::from_millis(20)).await;
        let failed: Vec<u64> = world
            .controllers
            .borrow()
            .iter()
            .filter(|(_, c)| c.alive)
            .filter_map(|(id, c)| c.node.as_ref().filter(|n| n.metrics().running_state.is_err()).map(|_| *id))
            .collect();
        for id in failed {
            world.storage_failures.set(world.storage_failures.get() + 1);
            sim_kill(id);
            platform::sleep(Duration::from_millis(with_rng(|r| r.between(10, 200)))).await;
            boot(&world, id, false);
        }
    }
}

/// The nemesis: cuts links, kills and restarts controllers, pauses and restarts brokers, for
/// `rounds` rounds.
async fn nemesis(world: Rc<World>, sim_kill: Rc<dyn Fn(u64)>, rounds: u64) {
    for _ in 0..rounds {
        platform::sleep(Duration::from_millis(with_rng(|r| r.between(50, 400)))).await;
        match with_rng(|r| r.below(5)) {
            0 => {
                let (a, b) = (with_rng(|r| r.between(1, NODES)), with_rng(|r| r.between(1, NODES)));
                if a != b {
                    world.net.partition(a as u32, b as u32);
                    world.partitions.set(world.partitions.get() + 1);
                }
            }
            1 => {
                let victim = with_rng(|r| r.between(1, NODES));
                let alive = world.controllers.borrow().values().filter(|c| c.alive).count();
                // Never more than one down at a time: a majority must remain to make progress.
                if alive as u64 == NODES {
                    sim_kill(victim);
                    platform::sleep(Duration::from_millis(with_rng(|r| r.between(10, 600)))).await;
                    boot(&world, victim, false);
                }
            }
            2 => world.net.heal(),
            3 => {
                // A broker cut from one controller, or from every one.
                let address = some_broker(&world);
                let one = with_rng(|r| r.between(1, NODES));
                for c in (1..=NODES).filter(|&c| c == one || with_rng(|r| r.chance(0.5))) {
                    world.net.partition(address, c as u32);
                }
                world.partitions.set(world.partitions.get() + 1);
            }
            _ => broker_fault(&world, &sim_kill).await,
        }
    }
    world.net.heal();
    broker::resume_all(&world);
}

/// A broker chosen at random.
fn some_broker(world: &World) -> u32 {
    let addresses: Vec<u32> = world.brokers.borrow().keys().copied().collect();
    addresses[with_rng(|r| r.below(addresses.len() as u64)) as usize]
}

/// A broker paused for up to a few session timeouts, or restarted (cleanly or not, with its
/// copy or without).
async fn broker_fault(world: &Rc<World>, sim_kill: &Rc<dyn Fn(u64)>) {
    let address = some_broker(world);
    let session_ms = world.timings.session_timeout.as_millis() as u64;
    match with_rng(|r| r.below(3)) {
        0 => {
            let pause = Duration::from_millis(with_rng(|r| r.between(session_ms / 2, session_ms * 5 / 2)));
            broker::pause(world, address, pause);
        }
        kind => {
            let how = broker::Restart {
                clean: kind == 1,
                keep_copy: with_rng(|r| r.chance(0.5)),
                down: Duration::from_millis(with_rng(|r| r.between(10, session_ms * 2))),
            };
            broker::restart(world, &**sim_kill, address, how).await;
        }
    }
}

/// The seed's world, its configuration drawn from the simulation's generator.
fn build_world(seed: u64, sim: &Sim, verbose: bool) -> World {
    let net_faults = sim.rng(|r| NetFaults {
        delay_us: (50, r.between(500, 5000)),
        drop: if r.chance(0.5) { 0.02 } else { 0.0 },
        duplicate: if r.chance(0.5) { 0.02 } else { 0.0 },
        ordered: r.chance(0.5),
    });
    let brokers = sim.rng(|r| r.between(BROKERS_MIN, BROKERS_MAX)) as u32;
    let net = Network::new(NODES as u32 + 1 + brokers, net_faults);
    let config = QuorumConfig {
        cluster_name: "sim".into(),
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        heartbeat_interval_ms: 50,
        install_snapshot_timeout_ms: 4000,
        snapshot_every_entries: sim.rng(|r| r.between(10, 60)),
        entries_kept_behind_snapshot: sim.rng(|r| r.between(0, 10)),
    };
    let timings = ServiceTimings {
        session_timeout: Duration::from_millis(sim.rng(|r| r.between(600, 1500))),
        write_timeout: Duration::from_millis(sim.rng(|r| r.between(500, 2000))),
        fetch_wait_max: Duration::from_secs(1),
    };
    let session_ms = timings.session_timeout.as_millis() as u64;
    let heartbeat_interval = Duration::from_millis(sim.rng(|r| r.between(100, session_ms / 3)));
    let call_timeout = timings.write_timeout + Duration::from_millis(sim.rng(|r| r.between(0, 1000)));
    if verbose {
        println!(
            "seed {seed} (quorum): network {net_faults:?}; {brokers} brokers, {timings:?}, heartbeats every {heartbeat_interval:?}, calls time out after {call_timeout:?}"
        );
    }
    let controllers = (1..=NODES)
        .map(|id| {
            // One endpoint for all of a controller's lives: its ids go on across restarts.
            let endpoint = Rc::new(Endpoint::new(id as u32, net.clone(), 0));
            let dir = PathBuf::from(format!("/c{id}/quorum"));
            (id, Controller { node: None, service: None, endpoint, dir, alive: false })
        })
        .collect();
    World {
        net,
        controllers: RefCell::new(controllers),
        config,
        leaders: RefCell::new(BTreeMap::new()),
        applied: RefCell::new(BTreeMap::new()),
        acknowledged: RefCell::new(Vec::new()),
        violation: RefCell::new(None),
        kills: Cell::new(0),
        partitions: Cell::new(0),
        storage_failures: Cell::new(0),
        verbose,
        brokers: RefCell::new(BTreeMap::new()),
        committed: RefCell::new(Committed::default()),
        timings,
        heartbeat_interval,
        call_timeout,
        stop_proposals: Cell::new(false),
        broker_stats: BrokerStats::default(),
        broker_count: brokers,
    }
}

/// Runs the quorum for one seed.
pub fn run_seed(seed: u64, verbose: bool) -> Result<String, String> {
    let sim = Rc::new(Sim::new(seed));
    // A third of the seeds fail disk operations now and then: the controller whose write or
    // fdatasync failed stops its log for good, and is restarted (as an operator would).
    let disk_failures = sim.rng(|r| r.chance(0.33));
    let disk = DiskFaults { fail: if disk_failures { 0.002 } else { 0.0 }, ..DiskFaults::default() };
    SimDisk::reset(disk);
    let world = Rc::new(build_world(seed, &sim, verbose));
    let brokers = world.broker_count;
    let batches = sim.rng(|r| r.between(30, 120));
    let rounds = sim.rng(|r| r.between(3, 20));
    let w = world.clone();
    let killer = {
        let (w, sim) = (world.clone(), sim.clone());
        Rc::new(move |id: u64| match id <= NODES {
            true => kill(&w, &sim, id),
            false => kill_broker(&w, &sim, id as u32),
        }) as Rc<dyn Fn(u64)>
    };
    let end = sim.run(
        async move {
            for id in 1..=NODES {
                boot(&w, id, true);
            }
            for address in NODES as u32 + 1..=NODES as u32 + brokers {
                broker::start(&w, address, 0, MetadataCopy::default());
            }
            let observer = {
                let w = w.clone();
                platform::spawn_local(async move {
                    loop {
                        platform::sleep(Duration::from_millis(7)).await;
                        observe(&w);
                    }
                })
            };
            let restarts = platform::spawn_local(restart_failed(w.clone(), killer.clone()));
            form_cluster(&w).await;
            let faults = platform::spawn_local(nemesis(w.clone(), killer, rounds));
            client(w.clone(), batches).await;
            faults.await;
            w.stop_proposals.set(true);
            // The disk behaves from here on; controllers stopped by it are restarted once more.
            SimDisk::reset_faults(DiskFaults { fail: 0.0, ..disk });
            platform::sleep(Duration::from_millis(300)).await;
            let outcome = ending::converge(&w).await;
            drop(observer);
            drop(restarts);
            outcome
        },
        50_000_000,
    );
    if let Some(why) = world.violation.borrow_mut().take() {
        return Err(why);
    }
    let topics = match end {
        RunEnd::Done(Ok(topics)) => topics,
        RunEnd::Done(Err(why)) => return Err(why),
        RunEnd::OutOfSteps => return Err("ran out of steps".into()),
        RunEnd::Stalled => return Err("stalled (no task ready, no timer set)".into()),
    };
    Ok(ending::summary(&world, &sim, topics))
}
