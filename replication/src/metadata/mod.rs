//! Cluster metadata: the records a controller decides, the image every broker builds by
//! applying them in order, and the node-local file they are kept in until the quorum exists.

pub mod brokers;
pub mod controller;
pub mod elect;
pub mod features;
pub mod image;
pub mod isr;
pub mod reassign;
pub mod record;
pub mod store;

pub use controller::{ClusterView, ControllerError, CreatedTopic, Decision, NewTopic};
pub use image::{ApplyError, BrokerImage, Change, MetadataImage, PartitionImage, TopicImage};
pub use record::{Endpoint, MetadataRecord};
