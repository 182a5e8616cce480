//! The importers of `seer-traces`, compiled from their sources without the rest
//! of the crate (arrow, parquet, tonic), so that fuzz builds stay small.
#![allow(dead_code, missing_docs)]

#[path = "../../traces/src/span.rs"]
pub mod span;

#[path = "../../traces/src/import/mod.rs"]
pub mod import;
