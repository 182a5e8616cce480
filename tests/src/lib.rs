//! End-to-end tests across Seer crates live in `tests/tests/`.
