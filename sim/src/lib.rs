//! Discrete-event microservice simulator (issue "seer-sim"): topologies, load
//! shapes, contention and fault injection with ground truth, and simulated
//! actuators for closed-loop runs. Not filled yet.
