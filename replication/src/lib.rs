//! `ringtail-replication`: the cluster: controller quorum, leader/follower replication, ISR and failover. Not built yet.
