//! Actions on a node (issue "seer-actuators"): the `Action` type, cgroup v1/v2
//! resizing, finding a task's cgroup, apply/revert and the crash-safe action
//! journal. Not filled yet.
