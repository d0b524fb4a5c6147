//! The controller quorum under the simulation: three controllers (the production quorum code:
//! openraft on our runtime adapter, the log storage and state machine on platform files, the
//! RPC frames) talking over the simulated network, while a client writes record batches through
//! whoever leads. Faults: links cut and healed, messages delayed, dropped and duplicated, and
//! single controllers killed (their tasks dropped, their directory through a power loss) and
//! restarted from their directories.
//!
//! Invariants, checked as the run goes and at its end: at most one leader per term; no two
//! controllers ever applied different states at the same log index (every applied state is a
//! prefix of the committed log); after healing, every controller converges to the same image,
//! and it holds every batch whose write was acknowledged.

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
use ringtail_replication::ids::TopicId;
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};
use ringtail_replication::quorum::{
    initialize, serve, start_node, ControllerNode, QuorumConfig, QuorumNode, RecordBatch, Transport, TransportError,
};

const NODES: u64 = 3;

#[derive(Debug, Clone)]
enum Msg {
    Request { id: u64, bytes: Rc<Vec<u8>> },
    Response { id: u64, bytes: Rc<Vec<u8>> },
}

/// One controller's end of the network: requests out with a correlation id, answers matched.
struct Endpoint {
    me: u32,
    net: Network<Msg>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, Rc<RefCell<Answer>>>>,
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
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let slot = Rc::new(RefCell::new(Answer::default()));
        self.pending.borrow_mut().insert(id, slot.clone());
        self.net.send(self.me, target as u32, Msg::Request { id, bytes: Rc::new(request) });
        // openraft bounds the wait (its RPC timeouts): an answer that never comes is a dropped
        // message or a dead peer.
        poll_fn(move |cx| {
            let mut answer = slot.borrow_mut();
            match answer.bytes.take() {
                Some(bytes) => Poll::Ready(Ok(bytes)),
                None => {
                    answer.waiter = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

struct Controller {
    node: Option<QuorumNode>,
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
}

impl World {
    fn violate(&self, why: String) {
        self.violation.borrow_mut().get_or_insert(why);
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

/// Serves one controller's incoming messages: requests through `serve`, answers to its calls.
async fn receive(world: Rc<World>, id: u64, endpoint: Rc<Endpoint>) {
    loop {
        let (from, msg) = world.net.recv(id as u32).await;
        match msg {
            Msg::Request { id: call, bytes } => {
                let raft = world.controllers.borrow().get(&id).and_then(|c| c.node.as_ref().map(|n| n.raft.clone()));
                let Some(raft) = raft else { continue };
                let net = world.net.clone();
                platform::spawn_local(async move {
                    let answer = serve(&raft, &bytes).await;
                    net.send(id as u32, from, Msg::Response { id: call, bytes: Rc::new(answer) });
                })
                .detach();
            }
            Msg::Response { id: call, bytes } => {
                let slot = endpoint.pending.borrow_mut().remove(&call);
                if let Some(slot) = slot {
                    let waiter = {
                        let mut answer = slot.borrow_mut();
                        answer.bytes = Some((*bytes).clone());
                        answer.waiter.take()
                    };
                    if let Some(w) = waiter {
                        w.wake();
                    }
                }
            }
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
        if let Some(c) = w.controllers.borrow_mut().get_mut(&id) {
            c.node = Some(node);
            c.alive = true;
        }
        receive(w, id, endpoint).await;
    });
}

/// Kills controller `id`: its tasks go, its directory loses power.
fn kill(world: &Rc<World>, sim: &Sim, id: u64) {
    let dir = {
        let mut cs = world.controllers.borrow_mut();
        let c = cs.get_mut(&id).expect("a controller");
        c.alive = false;
        c.node = None;
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

/// Records each live controller's role and applied state, checking the invariants.
fn observe(world: &World) {
    let nodes: Vec<(u64, QuorumNode)> = world
        .controllers
        .borrow()
        .iter()
        .filter_map(|(id, c)| c.node.clone().filter(|_| c.alive).map(|n| (*id, n)))
        .collect();
    for (id, node) in nodes {
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
}

/// The client: writes batch after batch through whoever leads, retrying while leadership moves.
async fn client(world: Rc<World>, batches: u64) {
    let mut n = 0;
    while n < batches {
        let leader = {
            let cs = world.controllers.borrow();
            cs.values().filter(|c| c.alive).filter_map(|c| c.node.clone()).find(|node| node.metrics().state.is_leader())
        };
        let Some(leader) = leader else {
            platform::sleep(Duration::from_millis(5)).await;
            continue;
        };
        // A write whose leader dies with it never answers: given up after a while. A write
        // not acknowledged has an unknown outcome (it may still commit), so the client moves
        // on to the next batch and only acknowledged ones are owed.
        match within(Duration::from_secs(2), leader.raft.client_write(batch(n))).await {
            Some(Ok(_)) => world.acknowledged.borrow_mut().push(n),
            _ => {
                platform::sleep(Duration::from_millis(2)).await;
            }
        }
        n += 1;
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

/// The nemesis: cuts links, kills and restarts controllers, for `rounds` rounds.
async fn nemesis(world: Rc<World>, sim_kill: Rc<dyn Fn(u64)>, rounds: u64) {
    for _ in 0..rounds {
        platform::sleep(Duration::from_millis(with_rng(|r| r.between(50, 400)))).await;
        match with_rng(|r| r.below(3)) {
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
            _ => world.net.heal(),
        }
    }
    world.net.heal();
}

/// Runs the quorum for one seed.
pub fn run_seed(seed: u64, verbose: bool) -> Result<String, String> {
    let sim = Rc::new(Sim::new(seed));
    // A third of the seeds fail disk operations now and then: the controller whose write or
    // fdatasync failed stops its log for good, and is restarted (as an operator would).
    let disk_failures = sim.rng(|r| r.chance(0.33));
    let disk = DiskFaults { fail: if disk_failures { 0.002 } else { 0.0 }, ..DiskFaults::default() };
    SimDisk::reset(disk);
    let net_faults = sim.rng(|r| NetFaults {
        delay_us: (50, r.between(500, 5000)),
        drop: if r.chance(0.5) { 0.02 } else { 0.0 },
        duplicate: if r.chance(0.5) { 0.02 } else { 0.0 },
        ordered: r.chance(0.5),
    });
    let net = Network::new(NODES as u32 + 1, net_faults);
    let config = QuorumConfig {
        cluster_name: "sim".into(),
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        heartbeat_interval_ms: 50,
        install_snapshot_timeout_ms: 4000,
        snapshot_every_entries: sim.rng(|r| r.between(10, 60)),
        entries_kept_behind_snapshot: sim.rng(|r| r.between(0, 10)),
    };
    let controllers = (1..=NODES)
        .map(|id| {
            let endpoint = Rc::new(Endpoint {
                me: id as u32,
                net: net.clone(),
                next_id: Cell::new(0),
                pending: RefCell::new(HashMap::new()),
            });
            (id, Controller { node: None, endpoint, dir: PathBuf::from(format!("/c{id}/quorum")), alive: false })
        })
        .collect();
    let world = Rc::new(World {
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
    });
    if verbose {
        println!("seed {seed} (quorum): network {net_faults:?}");
    }
    let batches = sim.rng(|r| r.between(30, 120));
    let rounds = sim.rng(|r| r.between(3, 12));
    let w = world.clone();
    let killer = {
        let (w, sim) = (world.clone(), sim.clone());
        Rc::new(move |id: u64| kill(&w, &sim, id)) as Rc<dyn Fn(u64)>
    };
    let end = sim.run(
        async move {
            for id in 1..=NODES {
                boot(&w, id, true);
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
            let faults = platform::spawn_local(nemesis(w.clone(), killer, rounds));
            client(w.clone(), batches).await;
            faults.await;
            // The disk behaves from here on; controllers stopped by it are restarted once more.
            SimDisk::reset_faults(DiskFaults { fail: 0.0, ..disk });
            platform::sleep(Duration::from_millis(300)).await;
            // Healed and all up: every controller converges on one image holding every
            // acknowledged batch.
            for _ in 0..400 {
                platform::sleep(Duration::from_millis(25)).await;
                observe(&w);
                let images: Vec<(u64, Option<u64>, MetadataImage)> = w
                    .controllers
                    .borrow()
                    .iter()
                    .filter_map(|(id, c)| c.node.as_ref().filter(|_| c.alive).map(|n| (*id, n)))
                    .map(|(id, n)| {
                        let s = n.state_machine.state();
                        (id, s.last_applied.map(|l| l.index), s.image.clone())
                    })
                    .collect();
                let all_up = images.len() as u64 == NODES;
                if all_up && images.windows(2).all(|p| p[0].1 == p[1].1 && p[0].2 == p[1].2) {
                    drop(observer);
                    drop(restarts);
                    let image = &images[0].2;
                    for n in w.acknowledged.borrow().iter() {
                        if image.topic(&format!("b{n}")).is_none() {
                            return Err(format!("acknowledged batch {n} is not in the converged image"));
                        }
                    }
                    return Ok(image.topic_count());
                }
            }
            let states: Vec<String> = w
                .controllers
                .borrow()
                .iter()
                .map(|(id, c)| match c.node.as_ref().filter(|_| c.alive) {
                    Some(n) => {
                        let m = n.metrics();
                        let s = n.state_machine.state();
                        format!(
                            "{id}: {:?} {:?} term {} last log {:?} applied {:?} topics {}",
                            m.state,
                            m.running_state,
                            m.current_term,
                            m.last_log_index,
                            s.last_applied.map(|l| l.index),
                            s.image.topic_count()
                        )
                    }
                    None => format!("{id}: down"),
                })
                .collect();
            Err(format!("the controllers did not converge within 10 s of healing: {}", states.join("; ")))
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
    let (sent, dropped, duplicated) = world.net.counts();
    Ok(format!(
        "quorum: {} batches acknowledged, {topics} topics converged, {} terms led, {} kills ({} after storage errors, {} disk failures injected), {} link cuts; network {sent} sent, {dropped} dropped, {duplicated} duplicated; {:?} virtual",
        world.acknowledged.borrow().len(),
        world.leaders.borrow().len(),
        world.kills.get(),
        world.storage_failures.get(),
        SimDisk::failures(),
        world.partitions.get(),
        sim.elapsed()
    ))
}
