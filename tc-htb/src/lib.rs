//! HTB qdiscs, classes and filters over rtnetlink, with class statistics.
//!
//! `tc` forks a process per change (2–4 ms); this crate speaks rtnetlink
//! directly on a synchronous socket (a few µs). It encodes HTB, fifo, sfq,
//! fq_codel, u32, fw, cgroup and matchall attributes itself, byte-identical
//! to iproute2's `tc`, and decodes dumps with statistics (bytes, packets,
//! drops, overlimits, backlog, tokens).
//!
//! ```no_run
//! use tc_htb::{Handle, HtbClass, HtbQdisc, Rate, Tc};
//! # fn main() -> Result<(), tc_htb::HtbError> {
//! let mut tc = Tc::open()?;
//! let eth = tc.link("eth0")?;
//! // tc qdisc add dev eth0 root handle 1: htb default 10
//! tc.qdisc_add(&eth, &HtbQdisc::root(1, 0x10))?;
//! // tc class add dev eth0 parent 1: classid 1:10 htb rate 200mbit ceil 1gbit
//! let class = HtbClass::new(Handle::new(1, 0), Handle::new(1, 0x10), Rate::mbit(200))
//!     .ceil(Rate::gbit(1));
//! tc.class_add(&eth, &class)?;
//! // tc class change ... rate 50mbit (microseconds, no fork)
//! tc.class_change(&eth, &HtbClass { rate: Rate::mbit(50), ..class })?;
//! let stats = tc.class_stats(&eth, Handle::new(1, 0x10))?;
//! println!("backlog {} bytes", stats.backlog_bytes);
//! # Ok(()) }
//! ```

pub mod ensure;
pub mod error;
pub mod handle;
pub mod msg;
pub mod rate;
pub mod tc;

pub use ensure::Change;
pub use error::HtbError;
pub use handle::{Handle, HandleError};
pub use msg::{
    Classifier, ETH_P_ALL, ETH_P_IP, Filter, HtbClass, HtbClassParams, HtbQdisc, HtbXstats, Leaf,
    MsgError, Options, Stats, TcObject, U32Match,
};
pub use rate::{Psched, Rate, RateError, parse_size};
pub use tc::{Link, Tc};
