//! A node's identity, recorded in its data directory's `meta.properties` (Kafka's file and
//! keys): the cluster the directory belongs to and the node it was written by. Written once,
//! when the directory is first used; checked at every start, so that a directory is never
//! served under another node id or joined to another cluster by mistake.

use std::io;
use std::path::{Path, PathBuf};

use crate::ids::NodeId;

pub const META_PROPERTIES_FILE: &str = "meta.properties";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: NodeId,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{path} is damaged: {reason}; restore it, or write it again with the cluster id and node id it had")]
    Damaged { path: PathBuf, reason: String },
    #[error("the data directory {dir} belongs to node {recorded}, not {configured}; start with --node-id {recorded} or use another data directory")]
    NodeMismatch { dir: PathBuf, recorded: NodeId, configured: NodeId },
    #[error("the data directory {dir} belongs to cluster {recorded}, not {configured}; use another data directory to join that cluster")]
    ClusterMismatch { dir: PathBuf, recorded: String, configured: String },
}

impl Identity {
    pub fn encode(&self) -> String {
        format!(
            "# Written by ringtail when this data directory was first used; do not edit.\nversion={VERSION}\ncluster.id={}\nnode.id={}\n",
            self.cluster_id, self.node_id
        )
    }

    pub fn decode(text: &str, path: &Path) -> Result<Identity, IdentityError> {
        let damaged = |reason: String| IdentityError::Damaged { path: path.to_path_buf(), reason };
        let (mut version, mut cluster_id, mut node_id) = (None, None, None);
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once('=').ok_or_else(|| damaged(format!("line `{line}` has no `=`")))?;
            match key.trim() {
                "version" => version = Some(value.trim().to_string()),
                "cluster.id" => cluster_id = Some(value.trim().to_string()),
                "node.id" => {
                    node_id = Some(value.trim().parse::<i32>().map_err(|_| damaged(format!("node.id `{value}`")))?)
                }
                _ => {}
            }
        }
        if version.as_deref() != Some("1") {
            return Err(damaged(format!("version {version:?}; this build reads version {VERSION}")));
        }
        let cluster_id = cluster_id.filter(|c| !c.is_empty()).ok_or_else(|| damaged("no cluster.id".into()))?;
        let node_id = NodeId(node_id.ok_or_else(|| damaged("no node.id".into()))?);
        Ok(Identity { cluster_id, node_id })
    }
}

/// Reads the directory's identity, if it has one.
pub fn read(data_dir: &Path) -> Result<Option<Identity>, IdentityError> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Identity::decode(&text, &path).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io { op: "read", path, source }),
    }
}

/// Writes the identity atomically and durably. Blocking: start-up only.
pub fn write(data_dir: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    let tmp = data_dir.join(format!("{META_PROPERTIES_FILE}.tmp"));
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |source| IdentityError::Io { op, path: p, source }
    };
    std::fs::write(&tmp, identity.encode()).map_err(io("write", &tmp))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    std::fs::File::open(data_dir).and_then(|f| f.sync_all()).map_err(io("sync", data_dir))
}

/// Checks the recorded identity against the node's configuration.
pub fn check(
    data_dir: &Path,
    recorded: &Identity,
    node_id: NodeId,
    cluster_id: Option<&str>,
) -> Result<(), IdentityError> {
    if recorded.node_id != node_id {
        return Err(IdentityError::NodeMismatch {
            dir: data_dir.to_path_buf(),
            recorded: recorded.node_id,
            configured: node_id,
        });
    }
    match cluster_id {
        Some(c) if c != recorded.cluster_id => Err(IdentityError::ClusterMismatch {
            dir: data_dir.to_path_buf(),
            recorded: recorded.cluster_id.clone(),
            configured: c.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_mismatches_are_named() {
        let path = Path::new("meta.properties");
        let id = Identity { cluster_id: "abc".into(), node_id: NodeId(3) };
        assert_eq!(Identity::decode(&id.encode(), path).unwrap(), id);
        for bad in
            ["", "version=2\ncluster.id=a\nnode.id=1", "version=1\nnode.id=1", "version=1\ncluster.id=a\nnode.id=x"]
        {
            assert!(Identity::decode(bad, path).is_err(), "{bad}");
        }
        let dir = Path::new("/data");
        assert!(check(dir, &id, NodeId(3), Some("abc")).is_ok());
        assert!(check(dir, &id, NodeId(3), None).is_ok());
        let e = check(dir, &id, NodeId(4), None).unwrap_err().to_string();
        assert!(e.contains("--node-id 3"), "{e}");
        assert!(matches!(check(dir, &id, NodeId(3), Some("xyz")), Err(IdentityError::ClusterMismatch { .. })));
    }
}
