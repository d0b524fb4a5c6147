//! The end of a quorum seed: once healed, the controllers and brokers must converge (one
//! image, every acknowledged batch in it, every broker caught up, registered and unfenced),
//! the committed records must all have been seen and every broker's copy compared with them;
//! and the seed's summary.

use std::rc::Rc;
use std::time::Duration;

use ringtail_log::platform::{self, Sim, SimDisk};
use ringtail_replication::metadata::{MetadataImage, MetadataRecord};

use super::broker::Broker;
use super::{observe, World, NODES};

/// Healed and all up: waits until every controller converges on one image holding every
/// acknowledged batch, and every broker has caught up with it, registered and unfenced; then
/// checks that the committed records were all seen and every broker's copy compared with them.
/// The number of topics.
pub async fn converge(w: &Rc<World>) -> Result<usize, String> {
    for _ in 0..400 {
        platform::sleep(Duration::from_millis(25)).await;
        observe(w);
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
        if !all_up || !images.windows(2).all(|p| p[0].1 == p[1].1 && p[0].2 == p[1].2) {
            continue;
        }
        let image = &images[0].2;
        if !w.brokers.borrow().values().all(|b| broker_settled(b, image)) {
            continue;
        }
        for n in w.acknowledged.borrow().iter() {
            if image.topic(&format!("b{n}")).is_none() {
                return Err(format!("acknowledged batch {n} is not in the converged image"));
            }
        }
        w.committed.borrow().finish(image.applied)?;
        for b in w.brokers.borrow().values() {
            if !b.copy.borrow().all_checked() {
                return Err(format!("broker {}'s copy holds records never compared with the committed ones", b.node));
            }
        }
        return Ok(image.topic_count());
    }
    let brokers: Vec<String> = w
        .brokers
        .borrow()
        .values()
        .map(|b| {
            let copy = b.copy.borrow();
            let me = copy.image.brokers().get(&b.node).map(|r| (r.incarnation == b.incarnation, r.fenced));
            format!(
                "{}: applied {:?}, (registered, fenced) {me:?}, proposing {}",
                b.node,
                copy.image.applied,
                b.proposing.get()
            )
        })
        .collect();
    Err(format!(
        "the controllers and brokers did not converge within 10 s of healing: {}; brokers {}",
        describe_controllers(w),
        brokers.join("; ")
    ))
}

/// A broker is settled once alive, done proposing, caught up with `image`, and registered
/// (this incarnation) and unfenced in it.
fn broker_settled(b: &Broker, image: &MetadataImage) -> bool {
    let copy = b.copy.borrow();
    let registered = image.brokers().get(&b.node).is_some_and(|r| r.incarnation == b.incarnation && !r.fenced);
    b.alive.get() && !b.proposing.get() && copy.image == *image && registered
}

fn describe_controllers(w: &World) -> String {
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
    states.join("; ")
}

/// The seed's one-paragraph account.
pub fn summary(world: &World, sim: &Sim, topics: usize) -> String {
    let (sent, dropped, duplicated) = world.net.counts();
    let committed = world.committed.borrow();
    let count = |f: fn(&MetadataRecord) -> bool| committed.records().iter().filter(|r| f(r)).count();
    let registered = count(|r| matches!(r, MetadataRecord::BrokerRegistered { .. }));
    let fenced = count(|r| matches!(r, MetadataRecord::BrokerFenced { .. }));
    let unfenced = count(|r| matches!(r, MetadataRecord::BrokerUnfenced { .. }));
    let c = &committed.checked;
    let b = &world.broker_stats;
    format!(
        "quorum: {} batches acknowledged, {topics} topics converged, {} terms led, {} kills ({} after storage errors, {} disk failures injected), {} link cuts; network {sent} sent, {dropped} dropped, {duplicated} duplicated; {:?} virtual\n  \
         brokers: {} brokers, {} metadata records; {} proposals committed ({} answered stale, {} unanswered), {registered} registrations ({} refused as duplicates), {fenced} fences, {unfenced} unfences, {} image fetches, {} pauses, {} restarts ({} clean shutdowns fenced); \
         checked {} proposals, {} broker images, {} controller images, {} registrations, {} partition changes, {} leaderships",
        world.acknowledged.borrow().len(),
        world.leaders.borrow().len(),
        world.kills.get(),
        world.storage_failures.get(),
        SimDisk::failures(),
        world.partitions.get(),
        sim.elapsed(),
        world.brokers.borrow().len(),
        committed.len(),
        b.proposed.get(),
        b.stale.get(),
        b.unanswered.get(),
        b.duplicates_refused.get(),
        b.image_fetches.get(),
        b.pauses.get(),
        b.restarts.get(),
        b.shut_down.get(),
        c.proposals,
        c.broker_images,
        c.controller_images,
        c.registrations,
        c.partition_changes,
        c.leaderships,
    )
}
