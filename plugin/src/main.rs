//! The `seer` command.

fn main() {}
