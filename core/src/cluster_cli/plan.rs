//! Plans for `ringtail cluster rebalance` and `ringtail cluster drain`, pure: from the layout
//! clients see (Metadata and DescribeCluster), the partitions to reassign and their target
//! replicas. The broker carries a plan out through AlterPartitionReassignments like any other
//! reassignment; a plan computed on a layout it already produced is empty, so a rebalance that
//! was stopped is resumed by running it again.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A partition's replicas (the preferred leader first) and in-sync replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What a plan works from: the live (registered, unfenced) brokers with their racks, and every
/// partition.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub brokers: BTreeMap<i32, Option<String>>,
    pub partitions: Vec<PartitionLayout>,
}

/// One reassignment of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

/// Replicas and preferred leaderships per live broker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    pub replicas: BTreeMap<i32, usize>,
    pub preferred_leaders: BTreeMap<i32, usize>,
}

impl Layout {
    pub fn load(&self) -> Load {
        let mut load = Load::default();
        for b in self.brokers.keys() {
            load.replicas.insert(*b, 0);
            load.preferred_leaders.insert(*b, 0);
        }
        for p in &self.partitions {
            for r in &p.replicas {
                if let Some(c) = load.replicas.get_mut(r) {
                    *c += 1;
                }
            }
            if let Some(c) = p.replicas.first().and_then(|first| load.preferred_leaders.get_mut(first)) {
                *c += 1;
            }
        }
        load
    }

    fn racks_of(&self, replicas: &[i32], except: i32) -> BTreeSet<Option<String>> {
        replicas.iter().filter(|r| **r != except).map(|r| self.brokers.get(r).cloned().flatten()).collect()
    }

    /// Whether putting `to` in `replicas` in place of `from` keeps the partition on as many
    /// racks as before (or more).
    fn rack_ok(&self, replicas: &[i32], from: i32, to: i32) -> bool {
        let others = self.racks_of(replicas, from);
        let rack_to = self.brokers.get(&to).cloned().flatten();
        let rack_from = self.brokers.get(&from).cloned().flatten();
        !others.contains(&rack_to) || others.contains(&rack_from) || rack_to == rack_from
    }
}

/// The live broker with the most (`max`) or fewest of `counts`, lowest id first among equals.
fn extreme(counts: &BTreeMap<i32, usize>, max: bool) -> Option<(i32, usize)> {
    let mut it = counts.iter().map(|(b, c)| (*b, *c));
    let first = it.next()?;
    Some(it.fold(first, |best, (b, c)| if (max && c > best.1) || (!max && c < best.1) { (b, c) } else { best }))
}

/// Per (topic, broker): replicas and preferred leaderships, so that a step takes from the topic
/// `hi` holds most of relative to `lo`, which evens out each topic as well as the whole.
#[derive(Default)]
struct TopicLoad {
    replicas: BTreeMap<(usize, i32), i64>,
    leaders: BTreeMap<(usize, i32), i64>,
}

impl TopicLoad {
    fn new(topics: &[usize], current: &[Vec<i32>]) -> TopicLoad {
        let mut load = TopicLoad::default();
        for (t, r) in topics.iter().zip(current) {
            for b in r {
                *load.replicas.entry((*t, *b)).or_default() += 1;
            }
            if let Some(first) = r.first() {
                *load.leaders.entry((*t, *first)).or_default() += 1;
            }
        }
        load
    }

    fn gap(map: &BTreeMap<(usize, i32), i64>, topic: usize, hi: i32, lo: i32) -> i64 {
        map.get(&(topic, hi)).copied().unwrap_or(0) - map.get(&(topic, lo)).copied().unwrap_or(0)
    }

    fn shift(map: &mut BTreeMap<(usize, i32), i64>, topic: usize, from: i32, to: i32) {
        *map.entry((topic, from)).or_default() -= 1;
        *map.entry((topic, to)).or_default() += 1;
    }
}

/// Evens out replicas, then preferred leaders, over the live brokers (each ends within one of
/// the others), keeping every partition on as many racks as it had, moving as few replicas as
/// the greedy steps need, each from the topic the two brokers differ most in. Replicas on
/// brokers that are not live stay where they are.
pub fn rebalance(layout: &Layout) -> Vec<Move> {
    let mut current: Vec<Vec<i32>> = layout.partitions.iter().map(|p| p.replicas.clone()).collect();
    let names: BTreeSet<&str> = layout.partitions.iter().map(|p| p.topic.as_str()).collect();
    let topics: Vec<usize> =
        layout.partitions.iter().map(|p| names.iter().position(|n| *n == p.topic).expect("listed")).collect();
    let mut by_topic = TopicLoad::new(&topics, &current);
    let mut load = layout.load();
    // The candidate partition with the largest gap between hi and lo in its topic, the first
    // such partition among equals.
    let best = |candidates: &mut dyn Iterator<Item = usize>, map: &BTreeMap<(usize, i32), i64>, hi: i32, lo: i32| {
        candidates.map(|i| (TopicLoad::gap(map, topics[i], hi, lo), std::cmp::Reverse(i))).max().map(|(_, i)| i.0)
    };
    // Replicas: move one from the fullest broker to the emptiest until within one. Each step
    // narrows the spread, so this ends; the bound is a guard.
    for _ in 0..layout.partitions.iter().map(|p| p.replicas.len()).sum::<usize>() + 1 {
        let Some((hi, hi_n)) = extreme(&load.replicas, true) else { break };
        // The emptiest brokers in turn, so one that can take nothing from `hi` does not stop it.
        let mut lows: Vec<(i32, usize)> =
            load.replicas.iter().map(|(b, c)| (*b, *c)).filter(|(_, c)| *c + 1 < hi_n).collect();
        lows.sort_by_key(|(b, c)| (*c, *b));
        let step = lows.iter().find_map(|(lo, _)| {
            let mut candidates = (0..current.len()).filter(|&i| {
                current[i].contains(&hi) && !current[i].contains(lo) && layout.rack_ok(&current[i], hi, *lo)
            });
            best(&mut candidates, &by_topic.replicas, hi, *lo).map(|i| (i, *lo))
        });
        let Some((i, lo)) = step else { break };
        let slot = current[i].iter().position(|r| *r == hi).expect("holds hi");
        current[i][slot] = lo;
        *load.replicas.get_mut(&hi).expect("live") -= 1;
        *load.replicas.get_mut(&lo).expect("live") += 1;
        TopicLoad::shift(&mut by_topic.replicas, topics[i], hi, lo);
        if slot == 0 {
            *load.preferred_leaders.get_mut(&hi).expect("live") -= 1;
            *load.preferred_leaders.get_mut(&lo).expect("live") += 1;
            TopicLoad::shift(&mut by_topic.leaders, topics[i], hi, lo);
        }
    }
    // Preferred leaders: put the least-leading broker first in a partition the most-leading one
    // heads and it holds.
    for _ in 0..layout.partitions.len() + 1 {
        let Some((hi, hi_n)) = extreme(&load.preferred_leaders, true) else { break };
        let mut lows: Vec<(i32, usize)> =
            load.preferred_leaders.iter().map(|(b, c)| (*b, *c)).filter(|(_, c)| *c + 1 < hi_n).collect();
        lows.sort_by_key(|(b, c)| (*c, *b));
        let step = lows.iter().find_map(|(lo, _)| {
            let mut candidates =
                (0..current.len()).filter(|&i| current[i].first() == Some(&hi) && current[i].contains(lo));
            best(&mut candidates, &by_topic.leaders, hi, *lo).map(|i| (i, *lo))
        });
        let Some((i, lo)) = step else { break };
        let slot = current[i].iter().position(|r| *r == lo).expect("holds lo");
        current[i].swap(0, slot);
        *load.preferred_leaders.get_mut(&hi).expect("live") -= 1;
        *load.preferred_leaders.get_mut(&lo).expect("live") += 1;
        TopicLoad::shift(&mut by_topic.leaders, topics[i], hi, lo);
    }
    moves(layout, current)
}

/// Why a drain cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    #[error("broker {0} is not a live broker of the cluster")]
    UnknownBroker(i32),
    #[error(
        "partition {topic}-{partition}: broker {node} holds its last in-sync replica (ISR {isr:?}); moving it \
         would leave the partition with no replica that has all its acknowledged data. Wait until its other \
         replicas are back in sync (their brokers running), then drain again"
    )]
    LastInSync { topic: String, partition: i32, node: i32, isr: Vec<i32> },
    #[error(
        "partition {topic}-{partition} (replicas {replicas:?}) has no other live broker to move its replica to: \
         add a broker, or lower its replication factor first"
    )]
    NoRoom { topic: String, partition: i32, replicas: Vec<i32> },
}

/// Every replica on `node` moved to another live broker (the least loaded one that keeps the
/// partition on as many racks, lowest id among equals), appended last so that the partition's
/// next replica becomes its preferred leader. Refused as a whole, before anything moves, if a
/// partition's only in-sync replica is on `node` while it has others (they are behind: the move
/// could not complete, and it would leave nothing else with the partition's data), or a
/// partition has nowhere to go.
pub fn drain(layout: &Layout, node: i32) -> Result<Vec<Move>, DrainError> {
    let holds = layout.partitions.iter().any(|p| p.replicas.contains(&node));
    if !layout.brokers.contains_key(&node) && !holds {
        return Err(DrainError::UnknownBroker(node));
    }
    let mut load = layout.load();
    load.replicas.remove(&node);
    // A partition of one replica moves as any other (the new replica copies it before the old
    // one goes); with others out of sync, nothing else has all its data. Said first: it is the
    // reason that matters.
    if let Some(p) = layout.partitions.iter().find(|p| p.isr == [node] && p.replicas.len() > 1) {
        return Err(DrainError::LastInSync {
            topic: p.topic.clone(),
            partition: p.partition,
            node,
            isr: p.isr.clone(),
        });
    }
    let mut current: Vec<Vec<i32>> = layout.partitions.iter().map(|p| p.replicas.clone()).collect();
    for (i, p) in layout.partitions.iter().enumerate() {
        if !p.replicas.contains(&node) {
            continue;
        }
        let choice = load
            .replicas
            .iter()
            .filter(|(b, _)| !p.replicas.contains(b))
            .map(|(b, c)| (!layout.rack_ok(&p.replicas, node, *b), *c, *b))
            .min()
            .map(|(_, _, b)| b);
        let Some(to) = choice else {
            return Err(DrainError::NoRoom {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
            });
        };
        current[i].retain(|r| *r != node);
        current[i].push(to);
        *load.replicas.get_mut(&to).expect("live") += 1;
    }
    Ok(moves(layout, current))
}

fn moves(layout: &Layout, planned: Vec<Vec<i32>>) -> Vec<Move> {
    layout
        .partitions
        .iter()
        .zip(planned)
        .filter(|(p, to)| p.replicas != *to)
        .map(|(p, to)| Move { topic: p.topic.clone(), partition: p.partition, from: p.replicas.clone(), to })
        .collect()
}

/// The layout once `moves` are done.
#[cfg(test)]
fn apply(layout: &Layout, moves: &[Move]) -> Layout {
    let mut after = layout.clone();
    for m in moves {
        if let Some(p) = after.partitions.iter_mut().find(|p| p.topic == m.topic && p.partition == m.partition) {
            p.replicas = m.to.clone();
            p.isr = m.to.clone();
        }
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(brokers: &[(i32, &str)], partitions: &[&[i32]]) -> Layout {
        Layout {
            brokers: brokers.iter().map(|(b, r)| (*b, (!r.is_empty()).then(|| r.to_string()))).collect(),
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(i, r)| PartitionLayout {
                    topic: "t".into(),
                    partition: i as i32,
                    replicas: r.to_vec(),
                    isr: r.to_vec(),
                })
                .collect(),
        }
    }

    fn spread(counts: &BTreeMap<i32, usize>) -> usize {
        counts.values().max().unwrap() - counts.values().min().unwrap()
    }

    #[test]
    fn a_new_broker_gets_its_share_of_replicas_and_preferred_leaders_and_a_second_plan_is_empty() {
        // Six partitions of three replicas on brokers 1-3; broker 4 joined.
        let before = layout(
            &[(1, ""), (2, ""), (3, ""), (4, "")],
            &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2], &[1, 3, 2], &[2, 1, 3], &[3, 2, 1]],
        );
        let plan = rebalance(&before);
        let after = apply(&before, &plan);
        let load = after.load();
        assert_eq!(load.replicas[&4], 4, "18 replicas over 4 brokers: {load:?}");
        assert!(spread(&load.replicas) <= 1 && spread(&load.preferred_leaders) <= 1, "{load:?}");
        assert!(load.preferred_leaders[&4] >= 1);
        for p in &after.partitions {
            let distinct: BTreeSet<_> = p.replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "{p:?}");
        }
        assert!(rebalance(&after).is_empty(), "resumed on its own result: nothing left");
    }

    #[test]
    fn each_topic_is_evened_out_too() {
        // Two topics of four partitions on brokers 1-2; brokers 3 and 4 joined.
        let mut before = layout(
            &[(1, ""), (2, ""), (3, ""), (4, "")],
            &[&[1, 2], &[2, 1], &[1, 2], &[2, 1], &[1, 2], &[2, 1], &[1, 2], &[2, 1]],
        );
        for p in before.partitions.iter_mut().skip(4) {
            p.topic = "u".into();
        }
        let after = apply(&before, &rebalance(&before));
        for topic in ["t", "u"] {
            let mut per_broker: BTreeMap<i32, usize> = BTreeMap::new();
            for p in after.partitions.iter().filter(|p| p.topic == topic) {
                for r in &p.replicas {
                    *per_broker.entry(*r).or_default() += 1;
                }
            }
            assert_eq!(per_broker.values().copied().collect::<Vec<_>>(), vec![2, 2, 2, 2], "{topic}: {per_broker:?}");
        }
    }

    #[test]
    fn a_balanced_cluster_needs_no_moves() {
        let l = layout(&[(1, ""), (2, ""), (3, "")], &[&[1, 2], &[2, 3], &[3, 1]]);
        assert!(rebalance(&l).is_empty());
    }

    #[test]
    fn rebalancing_keeps_partitions_spread_over_racks() {
        // Racks a (1, 3) and b (2, 4); each partition on both racks; 3 and 4 are empty.
        let before = layout(&[(1, "a"), (2, "b"), (3, "a"), (4, "b")], &[&[1, 2], &[2, 1], &[1, 2], &[2, 1]]);
        let after = apply(&before, &rebalance(&before));
        for p in &after.partitions {
            let racks: BTreeSet<_> = p.replicas.iter().map(|r| after.brokers[r].clone()).collect();
            assert_eq!(racks.len(), 2, "{p:?}");
        }
        assert!(spread(&after.load().replicas) <= 1, "{:?}", after.load());
    }

    #[test]
    fn draining_moves_every_replica_off_and_refuses_the_last_in_sync_one() {
        let mut l = layout(&[(1, ""), (2, ""), (3, ""), (4, "")], &[&[1, 2, 3], &[2, 3, 1], &[3, 4, 2]]);
        let plan = drain(&l, 1).expect("planned");
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].to, vec![2, 3, 4], "appended: 2 becomes the preferred leader");
        let after = apply(&l, &plan);
        assert!(after.partitions.iter().all(|p| !p.replicas.contains(&1)));
        assert!(drain(&after, 1).expect("nothing to move").is_empty());
        l.partitions[1].isr = vec![1];
        assert!(matches!(drain(&l, 1), Err(DrainError::LastInSync { partition: 1, .. })));
        let single = layout(&[(1, ""), (2, "")], &[&[1]]);
        assert_eq!(drain(&single, 1).expect("one replica moves").len(), 1);
        let small = layout(&[(1, ""), (2, "")], &[&[1, 2]]);
        assert!(matches!(drain(&small, 1), Err(DrainError::NoRoom { .. })));
        assert!(matches!(drain(&small, 7), Err(DrainError::UnknownBroker(7))));
    }
}
