//! CPU-quota action end to end (placeholder until the benchmark lands).
fn main() {}
