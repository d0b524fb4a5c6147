//! Server-side assignors of the consumer group protocol (KIP-848), by Kafka's names:
//! `uniform` (balanced and sticky) and `range` (per topic, contiguous ranges in member order).
//!
//! Pure and deterministic (std only): the simulation compiles this file on its own.

use std::collections::{BTreeMap, BTreeSet};

/// A topic's id as the wire carries it.
pub type TopicUuid = [u8; 16];
/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicUuid, BTreeSet<i32>>;

/// A member as an assignor sees it.
#[derive(Debug, Clone)]
pub struct MemberSpec<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// The names of the existing topics it subscribes to.
    pub topics: &'a BTreeSet<String>,
}

/// Computes the target assignment of every member. `topics` are the subscribed topics with
/// their id and partition count; `previous` is the last target, kept where it can be.
pub fn assign(
    name: &str,
    members: &[MemberSpec],
    topics: &BTreeMap<String, (TopicUuid, i32)>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, topics),
        _ => uniform(members, topics, previous),
    }
}

/// Partitions per member: Kafka's range assignor, topic by topic. A topic's partitions are cut
/// into contiguous ranges over its subscribers in member order (instance id, else member id, so
/// static members keep their ranges across restarts); the first `partitions % members` ranges
/// are one longer.
fn range(members: &[MemberSpec], topics: &BTreeMap<String, (TopicUuid, i32)>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> =
        members.iter().map(|m| (m.member_id.to_string(), Assignment::new())).collect();
    for (name, &(id, count)) in topics {
        let mut subscribers: Vec<&MemberSpec> = members.iter().filter(|m| m.topics.contains(name)).collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        subscribers.sort_by_key(|m| (m.instance_id.unwrap_or(m.member_id), m.member_id));
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in subscribers.iter().enumerate() {
            let len = each + i32::from((i as i32) < extra);
            if len > 0 {
                let set = out.get_mut(m.member_id).expect("every member").entry(id).or_default();
                set.extend(next..next + len);
            }
            next += len;
        }
    }
    out
}

/// Balanced and sticky: every member keeps what it had in the previous target as far as its
/// share allows, the rest go to the members with the fewest partitions among those subscribed
/// to the topic, and partitions then move from the fullest to the emptiest member that can take
/// them until no two members that could swap differ by more than one.
fn uniform(
    members: &[MemberSpec],
    topics: &BTreeMap<String, (TopicUuid, i32)>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let by_id: BTreeMap<TopicUuid, &str> = topics.iter().map(|(name, (id, _))| (*id, name.as_str())).collect();
    let mut out: BTreeMap<String, BTreeSet<(TopicUuid, i32)>> =
        members.iter().map(|m| (m.member_id.to_string(), BTreeSet::new())).collect();
    let subscribed = |m: &MemberSpec, topic: &TopicUuid| by_id.get(topic).is_some_and(|name| m.topics.contains(*name));
    let all: Vec<(TopicUuid, i32)> =
        topics.values().flat_map(|&(id, count)| (0..count.max(0)).map(move |p| (id, p))).collect();
    let subscribers_total = members.iter().filter(|m| !m.topics.is_empty()).count();
    let exists = |(topic, p): &(TopicUuid, i32)| topics.values().any(|(id, count)| id == topic && p < count);

    // Sticky part: what a member had and may still have, up to the fair share of a homogeneous
    // group (heterogeneous groups are evened out by the moves below).
    let fair_max = if subscribers_total == 0 { 0 } else { all.len().div_ceil(subscribers_total) };
    let mut taken: BTreeSet<(TopicUuid, i32)> = BTreeSet::new();
    for m in members {
        let Some(had) = previous.get(m.member_id) else { continue };
        let mine = out.get_mut(m.member_id).expect("every member");
        for (topic, partitions) in had {
            if !subscribed(m, topic) {
                continue;
            }
            for &p in partitions {
                let tp = (*topic, p);
                if mine.len() < fair_max && exists(&tp) && taken.insert(tp) {
                    mine.insert(tp);
                }
            }
        }
    }
    // Homogeneous groups: at most `all % n` members may hold one above the floor.
    if subscribers_total > 0 && members.iter().all(|m| m.topics == members[0].topics) {
        let floor = all.len() / subscribers_total;
        let mut above = all.len() % subscribers_total;
        for m in members {
            let mine = out.get_mut(m.member_id).expect("every member");
            if mine.len() > floor {
                if above > 0 {
                    above -= 1;
                } else {
                    while mine.len() > floor {
                        let last = *mine.iter().next_back().expect("not empty");
                        mine.remove(&last);
                        taken.remove(&last);
                    }
                }
            }
        }
    }
    // The rest, each to the least loaded member subscribed to its topic.
    for tp in all.iter().filter(|tp| !taken.contains(tp)) {
        let best = members
            .iter()
            .filter(|m| subscribed(m, &tp.0))
            .min_by_key(|m| (out[m.member_id].len(), m.member_id))
            .map(|m| m.member_id);
        if let Some(best) = best {
            out.get_mut(best).expect("every member").insert(*tp);
        }
    }
    // Even out: move from the fullest to the emptiest member able to take one of its
    // partitions. Each move shrinks the spread, so this ends.
    for _ in 0..all.len() {
        let mut moved = false;
        let mut order: Vec<&MemberSpec> = members.iter().collect();
        order.sort_by_key(|m| (std::cmp::Reverse(out[m.member_id].len()), m.member_id));
        'outer: for full in &order {
            for empty in order.iter().rev() {
                if out[full.member_id].len() <= out[empty.member_id].len() + 1 {
                    break;
                }
                let candidate = out[full.member_id].iter().rev().find(|tp| subscribed(empty, &tp.0)).copied();
                if let Some(tp) = candidate {
                    out.get_mut(full.member_id).expect("member").remove(&tp);
                    out.get_mut(empty.member_id).expect("member").insert(tp);
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out.into_iter()
        .map(|(member, set)| {
            let mut a = Assignment::new();
            for (topic, p) in set {
                a.entry(topic).or_default().insert(p);
            }
            (member, a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(spec: &[(&str, u8, i32)]) -> BTreeMap<String, (TopicUuid, i32)> {
        spec.iter().map(|&(name, id, count)| (name.to_string(), ([id; 16], count))).collect()
    }

    fn counts(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values().map(|x| x.values().map(|s| s.len()).sum()).collect()
    }

    fn every_partition_once(a: &BTreeMap<String, Assignment>, t: &BTreeMap<String, (TopicUuid, i32)>) {
        let mut seen = BTreeSet::new();
        for x in a.values() {
            for (topic, ps) in x {
                for p in ps {
                    assert!(seen.insert((*topic, *p)), "{p} twice");
                }
            }
        }
        let total: i32 = t.values().map(|(_, c)| c).sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_is_balanced_and_keeps_what_it_can() {
        let t = topics(&[("a", 1, 6)]);
        let subs: BTreeSet<String> = ["a".to_string()].into();
        let ids = ["m1", "m2", "m3"];
        let members: Vec<MemberSpec> =
            ids.iter().map(|id| MemberSpec { member_id: id, instance_id: None, topics: &subs }).collect();
        let first = assign("uniform", &members, &t, &BTreeMap::new());
        every_partition_once(&first, &t);
        assert_eq!(counts(&first), vec![2, 2, 2]);
        // m3 leaves: m1 and m2 keep their partitions and take m3's.
        let two = &members[..2];
        let second = assign("uniform", two, &t, &first);
        every_partition_once(&second, &t);
        assert_eq!(counts(&second), vec![3, 3]);
        for m in ["m1", "m2"] {
            assert!(first[m][&[1; 16]].is_subset(&second[m][&[1; 16]]), "{m} lost a partition");
        }
        // A fourth member joins three: each keeps at least one of its two and the newcomer gets its share.
        let subs4 = subs.clone();
        let mut four = members.clone();
        four.push(MemberSpec { member_id: "m4", instance_id: None, topics: &subs4 });
        let third = assign("uniform", &four, &t, &first);
        every_partition_once(&third, &t);
        let mut c = counts(&third);
        c.sort();
        assert_eq!(c, vec![1, 1, 2, 2]);
        for m in ids {
            assert!(third[m][&[1; 16]].is_subset(&first[m][&[1; 16]]), "{m} was given a partition another had");
        }
    }

    #[test]
    fn uniform_balances_heterogeneous_subscriptions() {
        let t = topics(&[("a", 1, 4), ("b", 2, 4)]);
        let ab: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let b: BTreeSet<String> = ["b".to_string()].into();
        let members = vec![
            MemberSpec { member_id: "m1", instance_id: None, topics: &ab },
            MemberSpec { member_id: "m2", instance_id: None, topics: &b },
        ];
        let out = assign("uniform", &members, &t, &BTreeMap::new());
        every_partition_once(&out, &t);
        assert_eq!(counts(&out), vec![4, 4]);
        assert!(!out["m2"].contains_key(&[1; 16]), "m2 is not subscribed to a");
    }

    #[test]
    fn range_cuts_each_topic_in_member_order() {
        let t = topics(&[("a", 1, 7)]);
        let subs: BTreeSet<String> = ["a".to_string()].into();
        let members: Vec<MemberSpec> = ["m2", "m1", "m3"]
            .iter()
            .map(|id| MemberSpec { member_id: id, instance_id: None, topics: &subs })
            .collect();
        let out = assign("range", &members, &t, &BTreeMap::new());
        every_partition_once(&out, &t);
        assert_eq!(out["m1"][&[1; 16]], (0..3).collect());
        assert_eq!(out["m2"][&[1; 16]], (3..5).collect());
        assert_eq!(out["m3"][&[1; 16]], (5..7).collect());
    }

    #[test]
    fn no_members_or_no_topics_assign_nothing() {
        let t = topics(&[("a", 1, 3)]);
        assert!(assign("uniform", &[], &t, &BTreeMap::new()).is_empty());
        let none = BTreeSet::new();
        let members = [MemberSpec { member_id: "m1", instance_id: None, topics: &none }];
        assert!(assign("uniform", &members, &t, &BTreeMap::new())["m1"].is_empty());
        assert!(assign("range", &members, &t, &BTreeMap::new())["m1"].is_empty());
    }
}
