//! Seer: keeps latency-critical microservices inside their QoS.
//!
//! This crate is the `seer` command and the pieces behind it: configuration, the
//! controller loop, cluster backends, the node agent and the demo. It talks to the
//! kernel only through `seer-actuators` and never links libtorch: a trained model
//! runs in process on `seer-infer`'s pure-Rust engine ([`predict`]), or is reached
//! over gRPC.

pub mod cli;
pub mod controller;
pub mod demo;
pub mod ingest;
pub mod predict;
pub mod report;
