//! The `seer.v1` protobuf files (under `proto/`) and their generated prost
//! messages and tonic clients and servers.
//!
//! The files are compiled at build time by the pure-Rust `protox` compiler, so no
//! `protoc` is needed. Every `.proto` under `proto/` joins the `seer.v1` package:
//! a new service is a new file there, nothing else to change.

/// Package `seer.v1`: the `Predictor` service (and every other Seer service).
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("seer.v1");
}
