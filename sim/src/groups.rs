//! The consumer group protocol's reconciliation (KIP-848): the production state machine and
//! assignors (core's own files, compiled into this crate) driven by simulated members under lost
//! answers, crashes, silent members whose sessions end, static members leaving and coming back,
//! slow revocations, subscription changes and growing topics.
//!
//! Checked after every step: the coordinator's own invariants (each partition owned by at most
//! one member, its owner index true), and that every member the coordinator knows holds, on the
//! client side, only partitions the coordinator counts as that member's (assigned or being
//! revoked), so no two live members ever hold the same partition. At the end, with faults off,
//! the group must converge: Stable, every partition of the subscribed topics held by exactly one
//! member, members holding what the coordinator assigned, and shares that differ by at most one.

use std::collections::{BTreeMap, BTreeSet};

use ringtail_log::platform::sim::rng::SimRng;

use crate::assignor::{Assignment, TopicUuid};
use crate::machine::{
    ConsumerGroup, Heartbeat, Refusal, Settings, TopicInfo, Topics, JOIN_EPOCH, LEAVE_EPOCH, STATIC_LEAVE_EPOCH,
};

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 5_000;
const STEPS: u64 = 600;
const CONVERGE_ROUNDS: usize = 40;

struct Catalog(BTreeMap<String, TopicInfo>);

impl Topics for Catalog {
    fn get(&self, name: &str) -> Option<TopicInfo> {
        self.0.get(name).copied()
    }
    /// The simulation's expressions are prefixes followed by `.*`.
    fn matching(&self, regex: &str) -> BTreeSet<String> {
        let prefix = regex.trim_end_matches(".*");
        self.0.keys().filter(|n| n.starts_with(prefix)).cloned().collect()
    }
}

/// A consumer process as the coordinator's peer sees it.
struct Client {
    member_id: String,
    instance: Option<String>,
    epoch: i32,
    /// What it holds (consumes from).
    owned: Assignment,
    /// Told to give these up; still held until the revocation finishes.
    revoking: Assignment,
    alive: bool,
    topics: Vec<String>,
    regex: Option<String>,
    /// Its subscription changed since it last said so.
    subscription_dirty: bool,
}

fn flat(a: &Assignment) -> BTreeSet<(TopicUuid, i32)> {
    a.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p))).collect()
}

fn from_flat(s: &BTreeSet<(TopicUuid, i32)>) -> Assignment {
    let mut a = Assignment::new();
    for (t, p) in s {
        a.entry(*t).or_default().insert(*p);
    }
    a
}

struct World {
    rng: SimRng,
    group: ConsumerGroup,
    catalog: Catalog,
    settings: Settings,
    clients: Vec<Client>,
    now: i64,
    next_id: u64,
    log: Vec<String>,
    verbose: bool,
}

impl World {
    fn note(&mut self, what: String) {
        if self.verbose {
            println!("  t={} {what}", self.now);
        }
        self.log.push(what);
        if self.log.len() > 30 {
            self.log.remove(0);
        }
    }

    fn new_member_id(&mut self) -> String {
        self.next_id += 1;
        format!("m{}", self.next_id)
    }

    /// One heartbeat of client `i`; the answer is lost with probability `lose`.
    fn heartbeat(&mut self, i: usize, lose: f64) {
        let c = &self.clients[i];
        let joining = c.epoch == JOIN_EPOCH;
        let send_subscription = joining || c.subscription_dirty || self.rng.chance(0.2);
        let held: BTreeSet<_> = flat(&c.owned).union(&flat(&c.revoking)).copied().collect();
        let hb = Heartbeat {
            member_id: c.member_id.clone(),
            member_epoch: c.epoch,
            instance_id: c.instance.clone(),
            rack_id: None,
            rebalance_timeout_ms: if joining { REBALANCE_MS } else { -1 },
            topic_names: send_subscription.then(|| c.topics.clone()),
            topic_regex: send_subscription.then(|| c.regex.clone().unwrap_or_default()),
            server_assignor: None,
            owned: Some(if joining { Assignment::new() } else { from_flat(&held) }),
            client_id: "sim".into(),
            client_host: "/sim".into(),
        };
        let result = self.group.heartbeat(hb, &self.catalog, &self.settings, self.now);
        let lost = self.rng.chance(lose);
        let id = self.clients[i].member_id.clone();
        self.note(format!(
            "heartbeat {id} epoch {} -> {result:?}{}",
            self.clients[i].epoch,
            if lost { " (lost)" } else { "" }
        ));
        if lost {
            return;
        }
        let c = &mut self.clients[i];
        c.subscription_dirty &= !send_subscription;
        match result {
            Ok(answer) => {
                c.epoch = answer.member_epoch;
                if let Some(target) = answer.assignment {
                    let target = flat(&target);
                    let owned = flat(&c.owned);
                    // New partitions are taken at once; the others are given up when the
                    // revocation (commit, callbacks) is done.
                    let gone: BTreeSet<_> = owned.difference(&target).copied().collect();
                    let mut revoking = flat(&c.revoking);
                    revoking.extend(gone);
                    revoking.retain(|tp| !target.contains(tp));
                    c.revoking = from_flat(&revoking);
                    c.owned = from_flat(&target);
                }
            }
            Err(Refusal::FencedMemberEpoch | Refusal::UnknownMemberId) => {
                // The member lost its partitions: it drops them and joins again.
                c.owned.clear();
                c.revoking.clear();
                c.epoch = JOIN_EPOCH;
                if c.instance.is_none() {
                    self.next_id += 1;
                    c.member_id = format!("m{}", self.next_id);
                }
            }
            Err(Refusal::UnreleasedInstanceId) | Err(Refusal::FencedInstanceId) => {}
            Err(Refusal::GroupMaxSizeReached { .. }) => c.alive = false,
        }
    }

    fn finish_revocation(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.revoking.clear();
    }

    fn crash(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.alive = false;
        c.owned.clear();
        c.revoking.clear();
        let id = c.member_id.clone();
        self.note(format!("crash {id}"));
    }

    fn restart(&mut self, i: usize) {
        let id = self.new_member_id();
        let c = &mut self.clients[i];
        c.alive = true;
        c.epoch = JOIN_EPOCH;
        c.member_id = id;
        c.subscription_dirty = true;
        let id = c.member_id.clone();
        self.note(format!("restart as {id}"));
    }

    /// A clean leave: revoke everything, then say goodbye (-2 for a static member).
    fn leave(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.owned.clear();
        c.revoking.clear();
        let epoch = if c.instance.is_some() { STATIC_LEAVE_EPOCH } else { LEAVE_EPOCH };
        let hb = Heartbeat {
            member_id: c.member_id.clone(),
            member_epoch: epoch,
            instance_id: c.instance.clone(),
            rebalance_timeout_ms: -1,
            ..Heartbeat::default()
        };
        c.alive = false;
        let result = self.group.heartbeat(hb, &self.catalog, &self.settings, self.now);
        let id = self.clients[i].member_id.clone();
        self.note(format!("leave {id} ({epoch}) -> {result:?}"));
    }

    fn check(&self) -> Result<(), String> {
        self.group.check_invariants()?;
        for c in self.clients.iter().filter(|c| c.alive) {
            let Some(m) = self.group.members.get(&c.member_id) else { continue };
            if c.epoch != m.epoch && c.epoch != m.previous_epoch {
                continue; // fenced: it learns so at its next heartbeat and drops everything
            }
            let counted: BTreeSet<_> = flat(&m.assigned).union(&flat(&m.revoking)).copied().collect();
            let held: BTreeSet<_> = flat(&c.owned).union(&flat(&c.revoking)).copied().collect();
            if let Some(tp) = held.difference(&counted).next() {
                return Err(format!(
                    "{} holds partition {}-{} the coordinator does not count as its own (it has {:?})",
                    c.member_id, tp.0[0], tp.1, counted
                ));
            }
        }
        Ok(())
    }

    fn converged(&self) -> Result<(), String> {
        if self.group.state() != "Stable" {
            return Err(format!("group state {}", self.group.state()));
        }
        let live: Vec<&Client> = self.clients.iter().filter(|c| c.alive).collect();
        let mut all = BTreeSet::new();
        for c in &live {
            let m = self.group.members.get(&c.member_id).ok_or(format!("{} is not a member", c.member_id))?;
            if c.owned != m.assigned || !c.revoking.is_empty() {
                return Err(format!("{} holds {:?}, assigned {:?}", c.member_id, c.owned, m.assigned));
            }
            for tp in flat(&c.owned) {
                if !all.insert(tp) {
                    return Err(format!("partition {}-{} held twice", tp.0[0], tp.1));
                }
            }
        }
        let subscribed: BTreeSet<String> = self.group.members.values().flat_map(|m| m.subscribed.clone()).collect();
        let expected: BTreeSet<(TopicUuid, i32)> = subscribed
            .iter()
            .filter_map(|n| self.catalog.0.get(n))
            .flat_map(|t| (0..t.partitions).map(move |p| (t.id, p)))
            .collect();
        let held_by_static_absent: BTreeSet<_> = self
            .group
            .members
            .values()
            .filter(|m| m.epoch == STATIC_LEAVE_EPOCH)
            .flat_map(|m| flat(&m.assigned))
            .collect();
        let missing: Vec<_> = expected.difference(&all).filter(|tp| !held_by_static_absent.contains(tp)).collect();
        if !missing.is_empty() {
            return Err(format!("partitions held by nobody: {missing:?}"));
        }
        // Kafka's range assignor evens each topic, not the total: only uniform must balance.
        let same = live.windows(2).all(|w| w[0].topics == w[1].topics && w[0].regex == w[1].regex);
        let uniform = self.settings.default_assignor == "uniform";
        if uniform && same && held_by_static_absent.is_empty() && !live.is_empty() {
            let sizes: Vec<usize> = live.iter().map(|c| flat(&c.owned).len()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            if hi - lo > 1 {
                return Err(format!("uneven shares {sizes:?}"));
            }
        }
        Ok(())
    }
}

/// Runs one seed; a one-line summary or why it failed.
pub fn run_seed(seed: u64, verbose: bool) -> Result<String, String> {
    let mut rng = SimRng::new(seed ^ 0x6b69_7038_3438);
    let clients_n = rng.between(2, 6) as usize;
    let static_members = rng.chance(0.4);
    let use_regex = rng.chance(0.3);
    let lose = if rng.chance(0.5) { 0.15 } else { 0.0 };
    let assignor = if rng.chance(0.3) { "range" } else { "uniform" };
    let mut catalog = BTreeMap::new();
    catalog.insert("t".to_string(), TopicInfo { id: [1; 16], partitions: rng.between(1, 12) as i32 });
    catalog.insert("u".to_string(), TopicInfo { id: [2; 16], partitions: rng.between(1, 4) as i32 });
    let mut world = World {
        rng,
        group: ConsumerGroup::new(),
        catalog: Catalog(catalog),
        settings: Settings { session_timeout_ms: SESSION_MS, members_max: 1000, default_assignor: assignor },
        clients: Vec::new(),
        now: 0,
        next_id: 0,
        log: Vec::new(),
        verbose,
    };
    for i in 0..clients_n {
        let id = world.new_member_id();
        world.clients.push(Client {
            member_id: id,
            instance: static_members.then(|| format!("instance-{i}")),
            epoch: JOIN_EPOCH,
            owned: Assignment::new(),
            revoking: Assignment::new(),
            alive: true,
            topics: if use_regex { Vec::new() } else { vec!["t".into()] },
            regex: use_regex.then(|| "t.*".to_string()),
            subscription_dirty: true,
        });
    }
    let fail =
        |world: &World, why: String| Err(format!("{why}\n    last steps:\n      {}", world.log.join("\n      ")));
    let mut faults = 0u64;
    for _ in 0..STEPS {
        let i = world.rng.below(world.clients.len() as u64) as usize;
        match world.rng.below(100) {
            0..=54 if world.clients[i].alive => world.heartbeat(i, lose),
            55..=69 => world.finish_revocation(i),
            70..=79 => {
                world.now += world.rng.between(1, 4_000) as i64;
                let (now, settings) = (world.now, world.settings);
                let gone = world.group.expire(&world.catalog, &settings, now);
                if !gone.is_empty() {
                    world.note(format!("expired {gone:?}"));
                }
            }
            80..=83 if world.clients[i].alive => {
                faults += 1;
                world.crash(i);
            }
            84..=87 if !world.clients[i].alive => world.restart(i),
            88..=90 if world.clients[i].alive => {
                faults += 1;
                world.leave(i);
            }
            91..=93 => {
                // Subscribe to u as well, or stop.
                let c = &mut world.clients[i];
                if !use_regex {
                    if c.topics.len() == 1 {
                        c.topics.push("u".into());
                    } else {
                        c.topics.truncate(1);
                    }
                    c.subscription_dirty = true;
                }
            }
            94..=95 => {
                // A topic grows, or one the regex matches appears.
                let name = if world.rng.chance(0.5) { "t" } else { "t2" };
                let id = if name == "t" { [1; 16] } else { [3; 16] };
                let t = world.catalog.0.entry(name.to_string()).or_insert(TopicInfo { id, partitions: 0 });
                t.partitions += world.rng.between(1, 3) as i32;
                let what = format!("topic {name} now has {} partitions", t.partitions);
                world.note(what);
            }
            _ => {}
        }
        if let Err(why) = world.check() {
            return fail(&world, why);
        }
    }
    // Faults off: everyone alive again, answers delivered, revocations finished promptly.
    for i in 0..world.clients.len() {
        if !world.clients[i].alive {
            world.restart(i);
        }
    }
    let mut result = Err(String::from("never checked"));
    for _ in 0..CONVERGE_ROUNDS {
        // Longer than a session over the rounds: members that crashed are expired meanwhile.
        world.now += 1_000;
        let (now, settings) = (world.now, world.settings);
        world.group.expire(&world.catalog, &settings, now);
        for i in 0..world.clients.len() {
            world.heartbeat(i, 0.0);
            world.finish_revocation(i);
            if let Err(why) = world.check() {
                return fail(&world, why);
            }
        }
        result = world.converged();
        if result.is_ok() {
            break;
        }
    }
    if let Err(why) = result {
        return fail(&world, format!("did not converge: {why}"));
    }
    Ok(format!(
        "groups: {clients_n} members{}, {faults} faults, epoch {}, {assignor}",
        if static_members { " (static)" } else { "" },
        world.group.epoch
    ))
}
