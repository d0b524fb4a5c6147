//! Integration tests of the log engine on real files: behaviour, a model-based random test,
//! crash recovery and injected I/O faults. One binary so glommio is linked once.

mod basics;
mod common;
mod crash;
mod faults;
mod follower;
mod model;
mod producers;
mod space;
mod truncation;
