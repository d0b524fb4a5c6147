//! The quorum simulation's brokers: each one, as a broker of a cluster does, heartbeats to the
//! active controller (registering, getting unfenced once caught up, asking to be fenced before
//! a clean shutdown), follows the committed metadata into a copy in memory (records appended,
//! or the whole image when it is too far behind), and proposes topics it decides on that copy
//! (`expected` its copy's last offset; on `Stale` it catches up and decides again). Every call
//! is a broker frame to a controller's `ControllerService::handle` over the simulated network,
//! bounded by a timeout like a real client's.
//!
//! Faults of their own: a broker pauses (its heartbeats stop, so its session expires), or
//! restarts as a new incarnation, after a controlled shutdown or a crash, with its copy kept
//! (as on disk) or started over.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use ringtail_log::platform::sim::executor::{spawn_in_group, with_rng};
use ringtail_log::platform::{self, Instant};
use ringtail_replication::ids::{LeaderEpoch, NodeId, PartitionId, TopicId};
use ringtail_replication::metadata::store::decode_checkpoint;
use ringtail_replication::metadata::{Endpoint as Listener, MetadataRecord};
use ringtail_replication::quorum::broker_wire::{
    decode_response, encode_request, BrokerRequest, BrokerResponse, FetchBody, Heartbeat,
};

use super::committed::{MetadataCopy, Proposal};
use super::{within, Endpoint, Msg, World, NODES};

/// A broker's call ids are its life's number shifted by this, then a count: each life has ids
/// of its own.
const CALL_ID_LIFE_SHIFT: u32 = 40;
/// How long a fetch waits at the controller for new records.
const FETCH_WAIT_MS: u32 = 200;
/// Beyond its wait, how long a fetch may take before it is sent again.
const FETCH_ROUND_TRIP_MAX: Duration = Duration::from_millis(500);
/// Pause after a call that failed before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Heartbeat pace while fenced (catching up to be unfenced).
const FENCED_HEARTBEAT: Duration = Duration::from_millis(100);
/// Calls to the active controller per request, following hints.
const LEADER_ATTEMPTS: usize = 3;
/// Tries at one proposal before it is given up (its outcome may stay unknown).
const PROPOSE_ATTEMPTS_MAX: u32 = 30;
/// How long a broker answered `Stale` waits for its copy to catch up before deciding again.
const CATCH_UP_WAIT: Duration = Duration::from_secs(1);
/// How often a paused broker looks whether its pause is over.
const PAUSE_CHECK: Duration = Duration::from_millis(50);
/// How long a clean shutdown waits for the controller to fence the broker.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// What brokers did, for the seed's summary.
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub proposed: Cell<u64>,
    pub stale: Cell<u64>,
    pub unanswered: Cell<u64>,
    pub duplicates_refused: Cell<u64>,
    pub image_fetches: Cell<u64>,
    pub restarts: Cell<u64>,
    /// Clean shutdowns answered fenced.
    pub shut_down: Cell<u64>,
    pub pauses: Cell<u64>,
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// Prints a broker's step when `SIM_DEBUG` is set.
fn debug(broker: &Broker, what: impl FnOnce() -> String) {
    if std::env::var_os("SIM_DEBUG").is_some() {
        let now = Instant::now() - Instant::zero();
        println!("    {now:?} broker {} (life {}): {}", broker.node, broker.life, what());
    }
}

/// One life (incarnation) of a simulated broker. Owned by the world's broker table; its tasks
/// run in the task group of its network address and die with it.
pub struct Broker {
    pub node: NodeId,
    /// Its network node and task group.
    pub address: u32,
    pub life: u64,
    pub incarnation: [u8; 16],
    endpoint: Rc<Endpoint>,
    pub copy: RefCell<MetadataCopy>,
    /// The controller believed active.
    leader: Cell<Option<u64>>,
    /// The controller tried next when none is believed active.
    next: Cell<u64>,
    epoch: Cell<Option<i64>>,
    fenced: Cell<bool>,
    shutting_down: Cell<bool>,
    /// Set once a heartbeat with `shutting_down` was answered fenced.
    shut_down: Cell<bool>,
    paused_until: Cell<Option<Instant>>,
    /// A proposal is in progress (its outcome not known yet).
    pub proposing: Cell<bool>,
    pub alive: Cell<bool>,
}

/// A change a broker proposes.
#[derive(Debug, Clone)]
enum Change {
    /// A topic of `partitions` partitions of `replication_factor` replicas (fewer if fewer
    /// brokers are unfenced), placed from the `first`-th unfenced broker on.
    Create {
        name: String,
        topic_id: TopicId,
        partitions: i32,
        replication_factor: usize,
        first: usize,
    },
    Delete {
        name: String,
    },
}

/// What deciding a change on the copy gave.
enum Decided {
    Records(Option<u64>, Vec<MetadataRecord>),
    /// The copy shows the change made already (an earlier try committed).
    Done,
    /// Not possible on this copy yet (no unfenced broker to place replicas on).
    Wait,
}

impl Broker {
    /// The controller to call: the one believed active, else the next in turn.
    fn target(&self) -> u64 {
        self.leader.get().unwrap_or_else(|| {
            let i = self.next.get();
            self.next.set(i + 1);
            1 + i % NODES
        })
    }

    /// Returns once the broker is not paused (looking now and then, so an early end of the
    /// pause is seen).
    async fn wait_unpaused(&self) {
        while let Some(until) = self.paused_until.get() {
            let now = Instant::now();
            if now >= until {
                self.paused_until.set(None);
                return;
            }
            platform::sleep((until - now).min(PAUSE_CHECK)).await;
        }
    }

    /// One call to controller `target`; `None` if no answer came in time. A heartbeat waits
    /// a third of the session timeout: a lost one is sent again (to the next controller) while
    /// the session lives. A fetch waits its wait and a round trip; a proposal, longer than the
    /// controller takes to answer a write it cannot commit.
    async fn call(&self, world: &World, target: u64, request: &BrokerRequest) -> Option<BrokerResponse> {
        let timeout = match request {
            BrokerRequest::Heartbeat(_) => world.timings.session_timeout / 3,
            BrokerRequest::Fetch { wait_ms, .. } => Duration::from_millis(u64::from(*wait_ms)) + FETCH_ROUND_TRIP_MAX,
            BrokerRequest::Propose { .. }
            | BrokerRequest::Describe
            | BrokerRequest::AlterPartition { .. }
            | BrokerRequest::AddVoter { .. }
            | BrokerRequest::RemoveVoter { .. } => world.call_timeout,
        };
        let (id, answer) = self.endpoint.call(target as u32, encode_request(request));
        let Some(bytes) = within(timeout, answer).await else {
            self.endpoint.forget(id);
            debug(self, || format!("call {id} to controller {target} timed out: {request:?}"));
            return None;
        };
        match decode_response(&bytes) {
            Ok(response) => Some(response),
            Err(e) => {
                world.violate(format!("controller {target} answered broker {} a damaged frame: {e}", self.node));
                None
            }
        }
    }

    /// Calls the active controller as `BrokerClient` does: following `NotLeader` hints, the
    /// next controller after one that did not answer, and a controller's own answer
    /// (`Unavailable` included) returned as it is. `None` when no controller took the request.
    async fn call_leader(&self, world: &World, request: &BrokerRequest) -> Option<BrokerResponse> {
        for _ in 0..LEADER_ATTEMPTS {
            let target = self.target();
            match self.call(world, target, request).await {
                Some(BrokerResponse::NotLeader(hint)) => {
                    self.leader.set(hint.map(|h| h.id).filter(|&id| id != target && (1..=NODES).contains(&id)));
                    if self.leader.get().is_none() {
                        platform::sleep(RETRY_PAUSE).await;
                    }
                }
                None => self.leader.set(None),
                Some(response) => {
                    self.leader.set(Some(target));
                    return Some(response);
                }
            }
        }
        None
    }

    /// Fetches from the controller believed active, or the next one.
    async fn fetch(&self, world: &World, from: u64) -> Option<BrokerResponse> {
        let target = self.target();
        let response = self.call(world, target, &BrokerRequest::Fetch { from, wait_ms: FETCH_WAIT_MS }).await;
        match &response {
            Some(BrokerResponse::Fetched { leader, .. }) => {
                self.leader.set(leader.as_ref().map(|h| h.id).filter(|id| (1..=NODES).contains(id)));
            }
            _ => self.leader.set(None),
        }
        response
    }

    fn heartbeat_request(&self) -> BrokerRequest {
        BrokerRequest::Heartbeat(Heartbeat {
            node: self.node,
            incarnation: self.incarnation,
            listeners: vec![Listener { name: "PLAINTEXT".into(), host: format!("broker-{}", self.node), port: 9092 }],
            rack: None,
            applied: self.copy.borrow().image.applied,
            shutting_down: self.shutting_down.get(),
            cluster_id: self.copy.borrow().image.cluster_id().map(str::to_string),
            // Storage damage is not simulated here: every replica reported healthy.
            offline: Vec::new(),
        })
    }
}

/// Starts life `life` of the broker at network address `address`, from `copy`.
pub fn start(world: &Rc<World>, address: u32, life: u64, copy: MetadataCopy) {
    let incarnation = with_rng(|r| {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&r.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&r.next_u64().to_be_bytes());
        bytes
    });
    let broker = Rc::new(Broker {
        node: NodeId(address as i32),
        address,
        life,
        incarnation,
        endpoint: Rc::new(Endpoint::new(address, world.net.clone(), life << CALL_ID_LIFE_SHIFT)),
        copy: RefCell::new(copy),
        leader: Cell::new(None),
        next: Cell::new(with_rng(|r| r.below(NODES))),
        epoch: Cell::new(None),
        fenced: Cell::new(true),
        shutting_down: Cell::new(false),
        shut_down: Cell::new(false),
        paused_until: Cell::new(None),
        proposing: Cell::new(false),
        alive: Cell::new(true),
    });
    world.brokers.borrow_mut().insert(address, broker.clone());
    let w = world.clone();
    spawn_in_group(address, async move {
        platform::spawn_local(heartbeats(w.clone(), broker.clone())).detach();
        platform::spawn_local(follow(w.clone(), broker.clone())).detach();
        platform::spawn_local(propose_changes(w.clone(), broker.clone())).detach();
        receive(w, broker).await;
    });
}

/// The broker's incoming messages: answers to its calls.
async fn receive(world: Rc<World>, broker: Rc<Broker>) {
    loop {
        let (_, msg) = world.net.recv(broker.address).await;
        if let Msg::Response { id, bytes } = msg {
            broker.endpoint.answer(id, &bytes);
        }
    }
}

/// Heartbeats to the active controller: the first registers this incarnation; the answers say
/// its epoch and whether it is fenced.
async fn heartbeats(world: Rc<World>, broker: Rc<Broker>) {
    loop {
        broker.wait_unpaused().await;
        let request = broker.heartbeat_request();
        let response = broker.call_leader(&world, &request).await;
        debug(&broker, || format!("heartbeat: {response:?}"));
        heartbeat_answered(&world, &broker, &request, response);
        let pause = if broker.fenced.get() { FENCED_HEARTBEAT } else { world.heartbeat_interval };
        platform::sleep(pause).await;
    }
}

/// Controlled shutdown, beside the heartbeats (as a broker shutting down does): heartbeats
/// asking to be fenced, until one is answered fenced.
async fn controlled_shutdown(world: Rc<World>, broker: Rc<Broker>) {
    broker.shutting_down.set(true);
    while !broker.shut_down.get() {
        let request = broker.heartbeat_request();
        let response = broker.call_leader(&world, &request).await;
        debug(&broker, || format!("shutdown heartbeat: {response:?}"));
        heartbeat_answered(&world, &broker, &request, response);
        if !broker.shut_down.get() {
            platform::sleep(FENCED_HEARTBEAT).await;
        }
    }
}

/// Takes in the answer to a heartbeat.
fn heartbeat_answered(world: &World, broker: &Broker, request: &BrokerRequest, response: Option<BrokerResponse>) {
    match response {
        Some(BrokerResponse::Heartbeat { broker_epoch, fenced }) => {
            if broker.epoch.replace(Some(broker_epoch)) != Some(broker_epoch) {
                world.committed.borrow_mut().registered(broker.node, broker.incarnation, broker_epoch);
            }
            broker.fenced.set(fenced);
            let shutting_down = matches!(request, BrokerRequest::Heartbeat(Heartbeat { shutting_down: true, .. }));
            if fenced && shutting_down && !broker.shut_down.replace(true) {
                bump(&world.broker_stats.shut_down);
                let at = world.applied_max();
                world.committed.borrow_mut().shut_down(broker.node, broker_epoch, at);
            }
        }
        Some(BrokerResponse::Refused(why)) => {
            // A new incarnation while the last one's session lives on at the controller.
            match why.contains("another live process") {
                true => bump(&world.broker_stats.duplicates_refused),
                false => world.violate(format!("broker {}'s heartbeat was refused: {why}", broker.node)),
            }
        }
        Some(other @ (BrokerResponse::Proposed { .. } | BrokerResponse::Fetched { .. })) => {
            world.violate(format!("broker {}'s heartbeat was answered {other:?}", broker.node));
        }
        _ => {}
    }
}

/// Follows the committed metadata into the broker's copy.
async fn follow(world: Rc<World>, broker: Rc<Broker>) {
    loop {
        broker.wait_unpaused().await;
        let from = broker.copy.borrow().next_offset();
        let response = broker.fetch(&world, from).await;
        debug(&broker, || match &response {
            Some(BrokerResponse::Fetched { body: FetchBody::Records { first, records }, .. }) => {
                format!("fetched {} records from {first}", records.len())
            }
            Some(BrokerResponse::Fetched { body: FetchBody::Image(_), applied, .. }) => {
                format!("fetched an image at {applied:?}")
            }
            other => format!("fetch from {from}: {other:?}"),
        });
        match response {
            Some(BrokerResponse::Fetched { body: FetchBody::Records { first, records }, .. }) => {
                if records.is_empty() {
                    world.violate(format!("broker {} fetched no records from {first} (not up to date)", broker.node));
                }
                if let Err(why) = broker.copy.borrow_mut().append(first, records) {
                    world.violate(format!("broker {}: {why}", broker.node));
                    return;
                }
            }
            Some(BrokerResponse::Fetched { body: FetchBody::Image(bytes), .. }) => {
                let image = match decode_checkpoint(&bytes, Path::new("a controller's image")) {
                    Ok(image) => image,
                    Err(e) => {
                        world.violate(format!("broker {} fetched a damaged image: {e}", broker.node));
                        return;
                    }
                };
                let newer = image.applied > broker.copy.borrow().image.applied;
                if !newer {
                    platform::sleep(RETRY_PAUSE).await;
                    continue;
                }
                bump(&world.broker_stats.image_fetches);
                world.committed.borrow_mut().fetched_image(broker.node, image.clone());
                broker.copy.borrow_mut().replace(image);
            }
            Some(BrokerResponse::Fetched { body: FetchBody::UpToDate, .. }) => {}
            Some(BrokerResponse::Refused(why)) => {
                world.violate(format!("broker {}'s fetch from {from} was refused: {why}", broker.node));
            }
            _ => {
                platform::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// A deterministic topic id for a broker's `k`-th topic of life `life` (the controller's
/// decision draws a random one; the simulation must replay).
fn topic_id(address: u32, life: u64, k: u64) -> TopicId {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&address.to_be_bytes());
    id[4..8].copy_from_slice(&(life as u32).to_be_bytes());
    id[8..].copy_from_slice(&k.to_be_bytes());
    TopicId(id)
}

/// Proposes changes decided on the copy until the world stops them.
async fn propose_changes(world: Rc<World>, broker: Rc<Broker>) {
    let mut k = 0u64;
    while !world.stop_proposals.get() {
        platform::sleep(Duration::from_millis(with_rng(|r| r.between(100, 400)))).await;
        let own = format!("s{}.", broker.address);
        let delete = with_rng(|r| r.chance(0.2));
        let victim = broker.copy.borrow().image.topics().map(|t| t.name.to_string()).find(|n| n.starts_with(&own));
        let change = match (delete, victim) {
            (true, Some(name)) => Change::Delete { name },
            _ => Change::Create {
                name: format!("s{}.{}-{k}", broker.address, broker.life),
                topic_id: topic_id(broker.address, broker.life, k),
                partitions: with_rng(|r| r.between(1, 3)) as i32,
                replication_factor: with_rng(|r| r.between(1, 3)) as usize,
                first: with_rng(|r| r.below(16)) as usize,
            },
        };
        k += 1;
        broker.proposing.set(true);
        propose(&world, &broker, &change).await;
        broker.proposing.set(false);
    }
}

/// Decides `change` on the broker's copy: a topic's partitions go round the unfenced brokers
/// from a random one (each partition's leader first, all in sync), and the records must apply
/// to the copy, as the controller's decide step requires.
fn decide(broker: &Broker, change: &Change) -> Result<Decided, String> {
    let copy = broker.copy.borrow();
    let image = &copy.image;
    let records = match change {
        Change::Create { name, topic_id, partitions, replication_factor, first } => {
            if image.topic(name).is_some() {
                return Ok(Decided::Done);
            }
            let nodes: Vec<NodeId> = image.brokers().iter().filter(|(_, b)| !b.fenced).map(|(n, _)| *n).collect();
            if nodes.is_empty() {
                return Ok(Decided::Wait);
            }
            let factor = (*replication_factor).min(nodes.len());
            let mut records =
                vec![MetadataRecord::TopicCreated { topic_id: *topic_id, name: name.clone(), configs: Vec::new() }];
            for index in 0..*partitions {
                let replicas: Vec<NodeId> =
                    (0..factor).map(|i| nodes[(first + index as usize + i) % nodes.len()]).collect();
                records.push(MetadataRecord::PartitionCreated {
                    partition: PartitionId { topic: *topic_id, index },
                    isr: replicas.clone(),
                    leader: replicas.first().copied(),
                    replicas,
                    leader_epoch: LeaderEpoch(0),
                });
            }
            records
        }
        Change::Delete { name } => match image.topic(name) {
            Some(topic) => vec![MetadataRecord::TopicDeleted { topic_id: topic.id }],
            None => return Ok(Decided::Done),
        },
    };
    let mut draft = image.clone();
    for (i, record) in records.iter().enumerate() {
        if let Err(e) = draft.apply(copy.next_offset() + i as u64, record) {
            return Err(format!("broker {} decided {record:?}, which does not apply to its copy: {e}", broker.node));
        }
    }
    Ok(Decided::Records(image.applied, records))
}

/// Proposes one change until it is answered, found made, or given up. An answer that never
/// came leaves the outcome unknown: deciding again on a copy that caught up shows it.
async fn propose(world: &World, broker: &Broker, change: &Change) {
    for _ in 0..PROPOSE_ATTEMPTS_MAX {
        broker.wait_unpaused().await;
        let (expected, records) = match decide(broker, change) {
            Ok(Decided::Records(expected, records)) => (expected, records),
            Ok(Decided::Done) => return,
            Ok(Decided::Wait) => {
                platform::sleep(FENCED_HEARTBEAT).await;
                continue;
            }
            Err(why) => return world.violate(why),
        };
        let request = BrokerRequest::Propose { expected, records: records.clone() };
        let response = broker.call_leader(world, &request).await;
        debug(broker, || format!("proposed {} records at {expected:?}: {response:?}", records.len()));
        match response {
            Some(BrokerResponse::Proposed { first, last }) => {
                bump(&world.broker_stats.proposed);
                let proposal = Proposal { broker: broker.node, expected, first, last, records };
                world.committed.borrow_mut().proposed(proposal);
                return;
            }
            Some(BrokerResponse::Stale { applied }) => {
                bump(&world.broker_stats.stale);
                let start = Instant::now();
                while broker.copy.borrow().image.applied < applied && start.elapsed() < CATCH_UP_WAIT {
                    platform::sleep(Duration::from_millis(10)).await;
                }
            }
            Some(BrokerResponse::Refused(why)) => {
                return world.violate(format!("broker {}'s proposal {change:?} was refused: {why}", broker.node));
            }
            Some(other @ (BrokerResponse::Heartbeat { .. } | BrokerResponse::Fetched { .. })) => {
                return world.violate(format!("broker {}'s proposal was answered {other:?}", broker.node));
            }
            _ => {
                bump(&world.broker_stats.unanswered);
                platform::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Pauses the broker for `pause`: it sends nothing, so its session may expire.
pub fn pause(world: &World, address: u32, pause: Duration) {
    if let Some(b) = world.brokers.borrow().get(&address) {
        b.paused_until.set(Some(Instant::now() + pause));
        bump(&world.broker_stats.pauses);
    }
}

/// Ends every pause.
pub fn resume_all(world: &World) {
    for b in world.brokers.borrow().values() {
        b.paused_until.set(None);
    }
}

/// How a broker restarts.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// A controlled shutdown first (waiting a while for the controller to fence it), else a
    /// crash.
    pub clean: bool,
    /// The copy survives (as on disk), else the new life starts from nothing.
    pub keep_copy: bool,
    pub down: Duration,
}

/// Restarts the broker at `address` as a new incarnation, killed by `kill`.
pub async fn restart(world: &Rc<World>, kill: &dyn Fn(u64), address: u32, how: Restart) {
    let Some(broker) = world.brokers.borrow().get(&address).cloned() else { return };
    if how.clean {
        spawn_in_group(address, controlled_shutdown(world.clone(), broker.clone()));
        let start = Instant::now();
        while !broker.shut_down.get() && start.elapsed() < SHUTDOWN_WAIT {
            platform::sleep(Duration::from_millis(10)).await;
        }
    }
    kill(u64::from(address));
    bump(&world.broker_stats.restarts);
    platform::sleep(how.down).await;
    let mut copy = broker.copy.borrow().clone();
    if !how.keep_copy {
        copy.forget_image();
    }
    start(world, address, broker.life + 1, copy);
}
