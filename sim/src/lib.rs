//! Seer's discrete-event microservice simulator.
//!
//! It runs a topology of services (workers, instances, service-time
//! distributions, call trees with parallel steps, blocking synchronous calls and
//! asynchronous messages) under an open-loop Poisson load, injects contention and
//! faults with ground truth, and emits spans — into Seer's trace pipeline in
//! process, or to files. A running simulation can be acted on through simulated
//! actuators, which is the world the closed-loop demo controls.
//!
//! ```
//! use seer_sim::{Sim, SimConfig, Topology, LoadShape, sink::CountSink};
//! let topo = Topology::load("chain").unwrap();
//! let cfg = SimConfig::new(topo, LoadShape::Constant { rate: 500.0 }, 2_000_000_000);
//! let mut sim = Sim::new(cfg).unwrap();
//! let mut sink = CountSink::default();
//! sim.run(&mut sink);
//! assert!(sim.stats().completed > 800);
//! assert_eq!(sink.spans, sim.stats().rpcs);
//! ```

pub mod builtin;
pub mod cli;
pub mod dataset;
pub mod dist;
pub mod engine;
pub mod inject;
pub mod load;
pub mod monitor;
pub mod rng;
pub mod sink;
pub mod topology;

pub use dataset::{run_to_dataset, run_to_dataset_with};
pub use engine::{Action, ControlConfig, RunStats, Sim, SimConfig, SimError};
pub use inject::{Campaign, Fault, InjectError, Injection};
pub use load::{LoadError, LoadShape};
pub use topology::{Topology, TopologyError};
