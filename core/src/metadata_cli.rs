//! `ringtail metadata`: a data directory's metadata as JSON, read from its files (identity,
//! metadata checkpoint and records, shard placement) without a running broker, for operators
//! and for tests that check what the broker recorded.

use std::path::Path;

use ringtail_replication::identity;
use ringtail_replication::metadata::store;
use ringtail_replication::PartitionId;
use serde_json::{json, Value};

use crate::runtime::placement::{Placement, PLACEMENT_FILE};

pub fn print(data_dir: &Path) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&describe(data_dir)?)?);
    Ok(())
}

pub fn describe(data_dir: &Path) -> anyhow::Result<Value> {
    let identity = identity::read(data_dir)?.ok_or_else(|| {
        anyhow::anyhow!("{} has no meta.properties: no broker of this release used it", data_dir.display())
    })?;
    let loaded = store::load(data_dir)?;
    let placement = match std::fs::read(data_dir.join(PLACEMENT_FILE)) {
        Ok(bytes) => Placement::decode(&bytes).map_err(|e| anyhow::anyhow!("{PLACEMENT_FILE}: {e}"))?,
        Err(_) => Placement::default(),
    };
    let topics: serde_json::Map<String, Value> = loaded
        .image
        .topics()
        .map(|t| {
            let partitions: Vec<Value> = t
                .partitions
                .iter()
                .enumerate()
                .map(|(index, p)| {
                    let shard = placement.shard(PartitionId { topic: t.id, index: index as i32 });
                    json!({
                        "partition": index,
                        "replicas": p.replicas.iter().map(|n| n.0).collect::<Vec<_>>(),
                        "isr": p.isr.iter().map(|n| n.0).collect::<Vec<_>>(),
                        "leader": p.leader.map(|n| n.0),
                        "leader_epoch": p.leader_epoch.0,
                        "shard": shard.map(|s| s.0),
                    })
                })
                .collect();
            (t.name.to_string(), json!({ "id": t.id.to_hex(), "configs": t.configs, "partitions": partitions }))
        })
        .collect();
    Ok(json!({
        "cluster_id": identity.cluster_id,
        "node_id": identity.node_id.0,
        "metadata_offset": loaded.image.applied,
        "topics": topics,
    }))
}
