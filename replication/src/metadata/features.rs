//! Cluster features (KIP-584): the feature levels this release can run at, and the levels a
//! cluster is finalized at when it is formed. Finalized levels are metadata records
//! (`MetadataRecord::FeatureLevel`), so every broker of a cluster reports the same ones.
//!
//! The ranges are honest: a feature whose protocol Ringtail does not serve yet stays at level 0
//! (`group.version` 1 is KIP-848's consumer groups, `transaction.version` is transactions,
//! `kraft.version` 1 is KIP-853's dynamic quorum). `metadata.version` is finalized at Kafka
//! 4.1's latest production level, since the broker speaks 4.1's API versions.

use super::image::MetadataImage;
use super::record::MetadataRecord;

/// One feature: the levels this release supports and the level a new cluster starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub min_level: i16,
    pub max_level: i16,
    /// Level a new cluster (or one formed before features were recorded) is finalized at.
    pub bootstrap_level: i16,
}

/// Kafka 4.1's `metadata.version` levels: 7 is 3.3-IV3 (the oldest Kafka 4 accepts), 27 is
/// 4.1-IV1.
pub const METADATA_VERSION_MIN: i16 = 7;
pub const METADATA_VERSION_4_1: i16 = 27;

pub const FEATURES: &[Feature] = &[
    Feature {
        name: "metadata.version",
        min_level: METADATA_VERSION_MIN,
        max_level: METADATA_VERSION_4_1,
        bootstrap_level: METADATA_VERSION_4_1,
    },
    Feature { name: "kraft.version", min_level: 0, max_level: 0, bootstrap_level: 0 },
    Feature { name: "transaction.version", min_level: 0, max_level: 0, bootstrap_level: 0 },
    Feature { name: "group.version", min_level: 0, max_level: 0, bootstrap_level: 0 },
    Feature { name: "eligible.leader.replicas.version", min_level: 0, max_level: 0, bootstrap_level: 0 },
];

/// The records that finalize each feature `image` has no level for at its bootstrap level
/// (features at level 0 need no record).
pub fn bootstrap_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    FEATURES
        .iter()
        .filter(|f| f.bootstrap_level > 0 && !image.features().contains_key(f.name))
        .map(|f| MetadataRecord::FeatureLevel { name: f.name.to_string(), level: f.bootstrap_level })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_levels_are_supported_and_recorded_once() {
        for f in FEATURES {
            assert!(f.min_level <= f.bootstrap_level && f.bootstrap_level <= f.max_level, "{f:?}");
        }
        let mut image = MetadataImage::default();
        let records = bootstrap_records(&image);
        assert_eq!(records, vec![MetadataRecord::FeatureLevel { name: "metadata.version".into(), level: 27 }]);
        for (offset, r) in records.iter().enumerate() {
            image.apply(offset as u64, r).unwrap();
        }
        assert!(bootstrap_records(&image).is_empty());
    }
}
