//! Pure encoding and decoding of rtnetlink traffic-control messages.
//!
//! Requests are written into a reusable byte buffer in the exact layout
//! `tc` (iproute2 6.1) sends; replies are decoded into [`TcObject`]s. Nothing
//! here touches a socket, so every function is tested against bytes captured
//! from the real `tc` (see `tests/golden/`).

use std::net::Ipv4Addr;

use netlink_packet_core::{NlaBuffer, NlasIterator};

/// The value of an attribute, borrowed for as long as the buffer it lies in.
fn nla_value(nla: NlaBuffer<&[u8]>) -> &[u8] {
    let len = usize::from(nla.length());
    let inner = nla.into_inner();
    &inner[4.min(inner.len())..len.min(inner.len())]
}

use crate::handle::Handle;
use crate::rate::{Psched, Rate};

/// Errors from encoding requests or decoding replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgError {
    /// A reply shorter than its headers claim, or with a broken attribute.
    #[error("malformed netlink message: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// A value the kernel would reject (or silently clamp).
    #[error("invalid {what} {value} for {handle}: {reason}")]
    Invalid {
        /// Which parameter.
        what: &'static str,
        /// Its value, printed.
        value: String,
        /// The object it was for.
        handle: Handle,
        /// Why it is invalid.
        reason: &'static str,
    },
}

fn malformed(reason: impl Into<String>) -> MsgError {
    MsgError::Malformed {
        reason: reason.into(),
    }
}

// --- netlink and rtnetlink constants (linux/netlink.h, linux/rtnetlink.h) ---

/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub const NLMSG_DONE: u16 = 3;
/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_GETLINK`.
pub const RTM_GETLINK: u16 = 18;
/// `RTM_NEWQDISC`.
pub const RTM_NEWQDISC: u16 = 36;
/// `RTM_DELQDISC`.
pub const RTM_DELQDISC: u16 = 37;
/// `RTM_GETQDISC`.
pub const RTM_GETQDISC: u16 = 38;
/// `RTM_NEWTCLASS`.
pub const RTM_NEWTCLASS: u16 = 40;
/// `RTM_DELTCLASS`.
pub const RTM_DELTCLASS: u16 = 41;
/// `RTM_GETTCLASS`.
pub const RTM_GETTCLASS: u16 = 42;
/// `RTM_NEWTFILTER`.
pub const RTM_NEWTFILTER: u16 = 44;
/// `RTM_DELTFILTER`.
pub const RTM_DELTFILTER: u16 = 45;
/// `RTM_GETTFILTER`.
pub const RTM_GETTFILTER: u16 = 46;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_MULTI`.
pub const NLM_F_MULTI: u16 = 0x2;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_ECHO`: send the result back to the asker too.
pub const NLM_F_ECHO: u16 = 0x8;
/// `NLM_F_REPLACE`.
pub const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL`.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_CAPPED` on an error: the request was not echoed back.
pub const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` on an error: extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the kernel's error text.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

const NLMSG_HDRLEN: usize = 16;
const TCMSG_LEN: usize = 20;
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_XSTATS: u16 = 4;
const TCA_STATS2: u16 = 7;
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
const TCA_STATS_APP: u16 = 4;
const TCA_STATS_PKT64: u16 = 8;

const TCA_HTB_PARMS: u16 = 1;
const TCA_HTB_INIT: u16 = 2;
const TCA_HTB_CTAB: u16 = 3;
const TCA_HTB_RTAB: u16 = 4;
const TCA_HTB_DIRECT_QLEN: u16 = 5;
const TCA_HTB_RATE64: u16 = 6;
const TCA_HTB_CEIL64: u16 = 7;
const TC_HTB_PROTOVER: u32 = 3;
/// HTB priorities run 0..=7 (`TC_HTB_NUMPRIO` is 8).
pub const HTB_MAX_PRIO: u32 = 7;
const TC_LINKLAYER_ETHERNET: u8 = 1;

const TCA_U32_CLASSID: u16 = 1;
const TCA_U32_DIVISOR: u16 = 4;
const TCA_U32_SEL: u16 = 5;
const TC_U32_TERMINAL: u8 = 1;
const TCA_FW_CLASSID: u16 = 1;
const TCA_MATCHALL_CLASSID: u16 = 1;
const TCA_FQ_CODEL_TARGET: u16 = 1;
const TCA_FQ_CODEL_LIMIT: u16 = 2;
const TCA_FQ_CODEL_INTERVAL: u16 = 3;
const TCA_FQ_CODEL_ECN: u16 = 4;

/// `ETH_P_IP`: IPv4 (`tc ... protocol ip`).
pub const ETH_P_IP: u16 = 0x0800;
/// `ETH_P_ALL`: every protocol (`tc ... protocol all`).
pub const ETH_P_ALL: u16 = 0x0003;

// --- request building ---

/// What a request does, and so which `NLM_F_*` flags it carries (as `tc`
/// sets them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `tc ... add`: create, fail if it exists.
    Add,
    /// `tc ... replace`: create or replace.
    Replace,
    /// `tc ... change`: modify in place, fail if missing.
    Change,
    /// `tc ... del`.
    Delete,
}

impl Verb {
    /// The `tc` word for this verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "add",
            Verb::Replace => "replace",
            Verb::Change => "change",
            Verb::Delete => "del",
        }
    }
}

/// The object a traffic-control message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A queueing discipline.
    Qdisc,
    /// A class.
    Class,
    /// A filter.
    Filter,
}

impl Object {
    /// The `tc` word for this object.
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Qdisc => "qdisc",
            Object::Class => "class",
            Object::Filter => "filter",
        }
    }

    fn new_type(self) -> u16 {
        match self {
            Object::Qdisc => RTM_NEWQDISC,
            Object::Class => RTM_NEWTCLASS,
            Object::Filter => RTM_NEWTFILTER,
        }
    }

    /// The `RTM_*` type and flags of `verb` on this object, as `tc` sends them.
    pub fn request(self, verb: Verb) -> (u16, u16) {
        let base = NLM_F_REQUEST | NLM_F_ACK;
        let new = self.new_type();
        match (self, verb) {
            (_, Verb::Add) => (new, base | NLM_F_EXCL | NLM_F_CREATE),
            // `tc qdisc replace` sets REPLACE; `tc class|filter replace` only CREATE.
            (Object::Qdisc, Verb::Replace) => (new, base | NLM_F_CREATE | NLM_F_REPLACE),
            (_, Verb::Replace) => (new, base | NLM_F_CREATE),
            (_, Verb::Change) => (new, base),
            (_, Verb::Delete) => (new + 1, base),
        }
    }

    /// The `RTM_GET*` type for this object.
    pub fn get_type(self) -> u16 {
        self.new_type() + 2
    }
}

/// The fixed `struct tcmsg` header of every traffic-control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcHeader {
    /// Interface index (`tcm_ifindex`).
    pub ifindex: i32,
    /// Object handle (`tcm_handle`).
    pub handle: Handle,
    /// Parent handle (`tcm_parent`).
    pub parent: Handle,
    /// For filters: priority in the high 16 bits, protocol (network order)
    /// in the low 16 (`tcm_info`).
    pub info: u32,
}

/// A growable netlink message writer; reuse one to avoid allocations.
#[derive(Debug, Default, Clone)]
pub struct MsgBuf {
    buf: Vec<u8>,
}

impl MsgBuf {
    /// An empty writer with room for a class message with rate tables.
    pub fn new() -> MsgBuf {
        MsgBuf {
            buf: Vec::with_capacity(4096),
        }
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Starts a message: the netlink header, length filled in by [`finish`](Self::finish).
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32) {
        self.buf.clear();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
    }

    /// Writes a `struct tcmsg`.
    pub fn tcmsg(&mut self, h: &TcHeader) {
        self.buf.extend_from_slice(&[0, 0, 0, 0]); // family AF_UNSPEC + padding
        self.buf.extend_from_slice(&h.ifindex.to_ne_bytes());
        self.buf.extend_from_slice(&h.handle.0.to_ne_bytes());
        self.buf.extend_from_slice(&h.parent.0.to_ne_bytes());
        self.buf.extend_from_slice(&h.info.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Appends an attribute with a raw value.
    pub fn attr(&mut self, ty: u16, value: &[u8]) {
        let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    /// Appends a `u32` attribute.
    pub fn attr_u32(&mut self, ty: u16, value: u32) {
        self.attr(ty, &value.to_ne_bytes());
    }

    /// Appends a NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, value: &str) {
        let len = u16::try_from(5 + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Opens a nested attribute; close it with [`nest_end`](Self::nest_end).
    pub fn nest_start(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    /// Closes the nested attribute opened at `at`.
    pub fn nest_end(&mut self, at: usize) {
        let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Writes the total length into the header; returns the message bytes.
    pub fn finish(&mut self) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        &self.buf
    }
}

/// `struct tc_ratespec`, 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateSpec {
    /// `cell_log`: log2 of the rate-table cell size.
    pub cell_log: u8,
    /// `linklayer`: 1 for Ethernet, 2 for ATM, 0 for unaware.
    pub linklayer: u8,
    /// Per-packet overhead in bytes.
    pub overhead: u16,
    /// `cell_align` (`tc` sends -1).
    pub cell_align: i16,
    /// Minimum packet unit in bytes.
    pub mpu: u16,
    /// Rate in bytes/s, saturated at `u32::MAX` (then `RATE64` carries it).
    pub rate: u32,
}

impl RateSpec {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.cell_log);
        out.push(self.linklayer);
        out.extend_from_slice(&self.overhead.to_ne_bytes());
        out.extend_from_slice(&self.cell_align.to_ne_bytes());
        out.extend_from_slice(&self.mpu.to_ne_bytes());
        out.extend_from_slice(&self.rate.to_ne_bytes());
    }

    fn read(b: &[u8]) -> RateSpec {
        RateSpec {
            cell_log: b[0],
            linklayer: b[1],
            overhead: u16::from_ne_bytes([b[2], b[3]]),
            cell_align: i16::from_ne_bytes([b[4], b[5]]),
            mpu: u16::from_ne_bytes([b[6], b[7]]),
            rate: u32_at(b, 8),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(v)
}

/// An HTB root (or inner) qdisc: `tc qdisc add dev D root handle 1: htb
/// default 10 r2q 10 direct_qlen 1000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtbQdisc {
    /// Where it attaches; [`Handle::ROOT`] for the egress root.
    pub parent: Handle,
    /// Its handle, e.g. `1:`.
    pub handle: Handle,
    /// Minor number of the class unclassified traffic goes to (`default`);
    /// 0 sends it to the direct queue, unshaped.
    pub default_class: u16,
    /// Rate-to-quantum divisor (`r2q`, default 10).
    pub r2q: u32,
    /// Length of the direct queue in packets (`direct_qlen`); `None` leaves
    /// the kernel default (the link's `txqueuelen`).
    pub direct_qlen: Option<u32>,
}

impl HtbQdisc {
    /// `root handle MAJ: htb default DEFAULT` with `r2q 10`.
    pub fn root(major: u16, default_class: u16) -> HtbQdisc {
        HtbQdisc {
            parent: Handle::ROOT,
            handle: Handle::new(major, 0),
            default_class,
            r2q: 10,
            direct_qlen: None,
        }
    }

    /// Sets `r2q`.
    pub fn r2q(mut self, r2q: u32) -> HtbQdisc {
        self.r2q = r2q;
        self
    }

    /// Sets `direct_qlen`.
    pub fn direct_qlen(mut self, packets: u32) -> HtbQdisc {
        self.direct_qlen = Some(packets);
        self
    }
}

/// An HTB class: `tc class add dev D parent 1: classid 1:10 htb rate R ceil C
/// burst B cburst CB prio P quantum Q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtbClass {
    /// Parent qdisc (`1:`) or class (`1:1`).
    pub parent: Handle,
    /// This class's id.
    pub classid: Handle,
    /// Guaranteed rate.
    pub rate: Rate,
    /// Maximum rate when borrowing; `None` means equal to `rate`.
    pub ceil: Option<Rate>,
    /// Bytes that may be sent at full speed above `rate`; `None` is `tc`'s
    /// default `rate / HZ + mtu`.
    pub burst: Option<u32>,
    /// Like `burst`, for `ceil`.
    pub cburst: Option<u32>,
    /// Priority 0 (highest) to 7 when borrowing.
    pub prio: u32,
    /// Bytes served per round (`quantum`); `None` lets the kernel use
    /// `rate / r2q`.
    pub quantum: Option<u32>,
    /// MTU used for default bursts and rate tables (`tc` default 1600).
    pub mtu: u32,
    /// Per-packet overhead in bytes (`overhead`).
    pub overhead: u16,
    /// Minimum packet unit (`mpu`).
    pub mpu: u16,
    /// Also send the legacy rate tables (`TCA_HTB_RTAB`/`CTAB`) as `tc`
    /// does. The kernel ignores them when the link layer is set (always here).
    pub rate_tables: bool,
}

impl HtbClass {
    /// A class `parent` → `classid` with `rate` and `tc`'s defaults.
    pub fn new(parent: Handle, classid: Handle, rate: Rate) -> HtbClass {
        HtbClass {
            parent,
            classid,
            rate,
            ceil: None,
            burst: None,
            cburst: None,
            prio: 0,
            quantum: None,
            mtu: 1600,
            overhead: 0,
            mpu: 0,
            rate_tables: false,
        }
    }

    /// Sets `ceil`.
    pub fn ceil(mut self, ceil: Rate) -> HtbClass {
        self.ceil = Some(ceil);
        self
    }

    /// Sets `burst` in bytes.
    pub fn burst(mut self, bytes: u32) -> HtbClass {
        self.burst = Some(bytes);
        self
    }

    /// Sets `cburst` in bytes.
    pub fn cburst(mut self, bytes: u32) -> HtbClass {
        self.cburst = Some(bytes);
        self
    }

    /// Sets `prio`.
    pub fn prio(mut self, prio: u32) -> HtbClass {
        self.prio = prio;
        self
    }

    /// Sets `quantum` in bytes.
    pub fn quantum(mut self, bytes: u32) -> HtbClass {
        self.quantum = Some(bytes);
        self
    }

    /// Sends the legacy rate tables too (byte-identical to `tc`).
    pub fn with_rate_tables(mut self) -> HtbClass {
        self.rate_tables = true;
        self
    }

    /// The ceil in effect.
    pub fn effective_ceil(&self) -> Rate {
        self.ceil.unwrap_or(self.rate)
    }

    /// Checks what the kernel would reject or silently clamp.
    pub fn validate(&self) -> Result<(), MsgError> {
        let invalid = |what, value: String, reason| MsgError::Invalid {
            what,
            value,
            handle: self.classid,
            reason,
        };
        if self.rate.0 == 0 {
            return Err(invalid(
                "rate",
                "0".into(),
                "rate must be at least 1 byte/s",
            ));
        }
        if self.effective_ceil().0 == 0 {
            return Err(invalid(
                "ceil",
                "0".into(),
                "ceil must be at least 1 byte/s",
            ));
        }
        if self.prio > HTB_MAX_PRIO {
            return Err(invalid(
                "prio",
                self.prio.to_string(),
                "HTB priorities are 0 to 7",
            ));
        }
        if self.classid.major() == 0 || self.classid.minor() == 0 {
            return Err(invalid(
                "classid",
                self.classid.to_string(),
                "a class id needs a major and a non-zero minor, like 1:10",
            ));
        }
        if self.parent.major() != self.classid.major() {
            return Err(invalid(
                "parent",
                self.parent.to_string(),
                "a class's parent must belong to the same qdisc major",
            ));
        }
        Ok(())
    }

    /// The burst in bytes actually sent (the given one or `tc`'s default).
    pub fn effective_burst(&self, psched: &Psched) -> u32 {
        self.burst
            .unwrap_or_else(|| psched.default_burst(self.rate, self.mtu))
    }

    /// The cburst in bytes actually sent.
    pub fn effective_cburst(&self, psched: &Psched) -> u32 {
        self.cburst
            .unwrap_or_else(|| psched.default_burst(self.effective_ceil(), self.mtu))
    }

    /// The `struct tc_htb_opt` this class encodes to.
    pub fn params(&self, psched: &Psched) -> HtbClassParams {
        let ceil = self.effective_ceil();
        HtbClassParams {
            rate: ceil_spec(self, self.rate),
            ceil: ceil_spec(self, ceil),
            rate64: self.rate,
            ceil64: ceil,
            buffer: psched.xmit_ticks(self.rate, self.effective_burst(psched)),
            cbuffer: psched.xmit_ticks(ceil, self.effective_cburst(psched)),
            quantum: self.quantum.unwrap_or(0),
            level: 0,
            prio: self.prio,
        }
    }
}

fn cell_log_for(mtu: u32) -> u8 {
    let mtu = if mtu == 0 { 2047 } else { mtu };
    let mut cell_log = 0u8;
    while (mtu >> cell_log) > 255 {
        cell_log += 1;
    }
    cell_log
}

fn ceil_spec(class: &HtbClass, rate: Rate) -> RateSpec {
    RateSpec {
        cell_log: cell_log_for(class.mtu),
        linklayer: TC_LINKLAYER_ETHERNET,
        overhead: class.overhead,
        cell_align: -1,
        mpu: class.mpu,
        rate: u32::try_from(rate.0).unwrap_or(u32::MAX),
    }
}

/// The rate table `tc` sends (`tc_calc_rtable`): ticks to send each size class.
fn rate_table(psched: &Psched, spec: &RateSpec) -> [u32; 256] {
    let mut table = [0u32; 256];
    let rate = Rate(u64::from(spec.rate));
    for (i, slot) in table.iter_mut().enumerate() {
        let size = ((i as u32 + 1) << spec.cell_log).max(u32::from(spec.mpu));
        *slot = psched.xmit_ticks(rate, size);
    }
    table
}

/// The content of `struct tc_htb_opt` plus the 64-bit rates: what the kernel
/// stores for a class and reports back in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HtbClassParams {
    /// Rate spec (rate saturated at 32 bits).
    pub rate: RateSpec,
    /// Ceil spec.
    pub ceil: RateSpec,
    /// The full rate (from `TCA_HTB_RATE64` when above 32 bits).
    pub rate64: Rate,
    /// The full ceil.
    pub ceil64: Rate,
    /// Burst as scheduler ticks at `rate`.
    pub buffer: u32,
    /// Cburst as scheduler ticks at `ceil`.
    pub cbuffer: u32,
    /// Quantum in bytes (0 in a request: computed by the kernel).
    pub quantum: u32,
    /// Level in the class tree (0 for leaves).
    pub level: u32,
    /// Priority.
    pub prio: u32,
}

impl HtbClassParams {
    /// The burst in bytes (`tc -d class show` prints the same).
    pub fn burst_bytes(&self, psched: &Psched) -> u32 {
        psched.xmit_size(self.rate64, self.buffer)
    }

    /// The cburst in bytes.
    pub fn cburst_bytes(&self, psched: &Psched) -> u32 {
        psched.xmit_size(self.ceil64, self.cbuffer)
    }

    fn write(&self, out: &mut Vec<u8>) {
        self.rate.write(out);
        self.ceil.write(out);
        for v in [
            self.buffer,
            self.cbuffer,
            self.quantum,
            self.level,
            self.prio,
        ] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
}

/// A leaf qdisc under an HTB class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// `pfifo [limit PACKETS]`.
    Pfifo {
        /// Queue limit in packets.
        limit: Option<u32>,
    },
    /// `bfifo [limit BYTES]`.
    Bfifo {
        /// Queue limit in bytes.
        limit: Option<u32>,
    },
    /// `sfq [perturb SECS] [limit PACKETS] [quantum BYTES]`.
    Sfq {
        /// Hash perturbation period in seconds (0: never).
        perturb_secs: i32,
        /// Queue limit in packets (0: kernel default).
        limit: u32,
        /// Quantum in bytes (0: kernel default).
        quantum: u32,
    },
    /// `fq_codel [limit PACKETS] [target US] [interval US] [ecn|noecn]`.
    FqCodel {
        /// Queue limit in packets.
        limit: Option<u32>,
        /// Target delay in microseconds.
        target_us: Option<u32>,
        /// Interval in microseconds.
        interval_us: Option<u32>,
        /// ECN marking.
        ecn: Option<bool>,
    },
}

impl Leaf {
    /// The qdisc kind string.
    pub fn kind(&self) -> &'static str {
        match self {
            Leaf::Pfifo { .. } => "pfifo",
            Leaf::Bfifo { .. } => "bfifo",
            Leaf::Sfq { .. } => "sfq",
            Leaf::FqCodel { .. } => "fq_codel",
        }
    }

    fn write(&self, m: &mut MsgBuf) {
        m.attr_str(TCA_KIND, self.kind());
        match *self {
            Leaf::Pfifo { limit } | Leaf::Bfifo { limit } => {
                if let Some(limit) = limit {
                    m.attr_u32(TCA_OPTIONS, limit);
                }
            }
            Leaf::Sfq {
                perturb_secs,
                limit,
                quantum,
            } => {
                // struct tc_sfq_qopt_v1 (72 bytes), as `tc` sends it.
                let mut v = [0u8; 72];
                v[0..4].copy_from_slice(&quantum.to_ne_bytes());
                v[4..8].copy_from_slice(&perturb_secs.to_ne_bytes());
                v[8..12].copy_from_slice(&limit.to_ne_bytes());
                m.attr(TCA_OPTIONS, &v);
            }
            Leaf::FqCodel {
                limit,
                target_us,
                interval_us,
                ecn,
            } => {
                let nest = m.nest_start(TCA_OPTIONS);
                if let Some(v) = target_us {
                    m.attr_u32(TCA_FQ_CODEL_TARGET, v);
                }
                if let Some(v) = limit {
                    m.attr_u32(TCA_FQ_CODEL_LIMIT, v);
                }
                if let Some(v) = interval_us {
                    m.attr_u32(TCA_FQ_CODEL_INTERVAL, v);
                }
                if let Some(v) = ecn {
                    m.attr_u32(TCA_FQ_CODEL_ECN, u32::from(v));
                }
                m.nest_end(nest);
            }
        }
    }
}

/// A u32 match on IPv4 addresses and TCP/UDP ports, sending hits to a class:
/// `tc filter add ... protocol ip u32 match ip src A/N match ip dst B/M
/// match ip sport P 0xffff match ip dport Q 0xffff flowid C`.
///
/// Ports are matched at offset 20, assuming no IP options, exactly like
/// `tc`'s `match ip sport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U32Match {
    /// Source network and prefix length.
    pub src: Option<(Ipv4Addr, u8)>,
    /// Destination network and prefix length.
    pub dst: Option<(Ipv4Addr, u8)>,
    /// Source port.
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
}

/// One 32-bit key of a u32 selector: `(packet word at off) & mask == val`,
/// `val` and `mask` in network byte order as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct U32Key {
    /// Mask (host-order number of the network-order word).
    pub mask: u32,
    /// Value.
    pub val: u32,
    /// Byte offset from the network header.
    pub off: i32,
    /// Offset mask for variable headers (0 here).
    pub offmask: i32,
}

fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - l),
    }
}

impl U32Match {
    /// The keys `tc` builds (ports at offset 20 merge into one key).
    pub fn keys(&self) -> Vec<U32Key> {
        let mut keys: Vec<U32Key> = Vec::with_capacity(3);
        let mut push = |off: i32, val: u32, mask: u32| {
            if let Some(k) = keys.iter_mut().find(|k| k.off == off && k.offmask == 0) {
                k.val |= val & mask;
                k.mask |= mask;
            } else {
                keys.push(U32Key {
                    mask,
                    val: val & mask,
                    off,
                    offmask: 0,
                });
            }
        };
        if let Some((addr, len)) = self.src {
            push(12, u32::from(addr), prefix_mask(len));
        }
        if let Some((addr, len)) = self.dst {
            push(16, u32::from(addr), prefix_mask(len));
        }
        if let Some(port) = self.sport {
            push(20, u32::from(port) << 16, 0xFFFF_0000);
        }
        if let Some(port) = self.dport {
            push(20, u32::from(port), 0x0000_FFFF);
        }
        keys
    }

    /// Rebuilds a match from keys written by [`keys`](Self::keys) (or `tc`);
    /// `None` for selectors this type cannot express.
    pub fn from_keys(keys: &[U32Key]) -> Option<U32Match> {
        let mut m = U32Match {
            src: None,
            dst: None,
            sport: None,
            dport: None,
        };
        for k in keys {
            match k.off {
                12 | 16 if k.offmask == 0 => {
                    let len = k.mask.leading_ones() as u8;
                    if prefix_mask(len) != k.mask {
                        return None;
                    }
                    let net = (Ipv4Addr::from(k.val), len);
                    if k.off == 12 {
                        m.src = Some(net)
                    } else {
                        m.dst = Some(net)
                    }
                }
                20 if k.offmask == 0 => match k.mask {
                    0xFFFF_FFFF => {
                        m.sport = Some((k.val >> 16) as u16);
                        m.dport = Some(k.val as u16);
                    }
                    0xFFFF_0000 => m.sport = Some((k.val >> 16) as u16),
                    0x0000_FFFF => m.dport = Some(k.val as u16),
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(m)
    }
}

/// A filter's classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classifier {
    /// `u32 match ... flowid CLASS`.
    U32 {
        /// What to match.
        matches: U32Match,
        /// Target class.
        flowid: Handle,
    },
    /// `handle MARK fw flowid CLASS`: packets with this fwmark.
    Fw {
        /// The firewall mark (also the filter handle).
        mark: u32,
        /// Target class.
        flowid: Handle,
    },
    /// `handle H cgroup`: class from the sender's `net_cls.classid`
    /// (cgroup v1).
    Cgroup,
    /// `matchall classid CLASS`: every packet.
    Matchall {
        /// Target class.
        classid: Handle,
    },
}

impl Classifier {
    /// The classifier kind string.
    pub fn kind(&self) -> &'static str {
        match self {
            Classifier::U32 { .. } => "u32",
            Classifier::Fw { .. } => "fw",
            Classifier::Cgroup => "cgroup",
            Classifier::Matchall { .. } => "matchall",
        }
    }
}

/// A filter: where it attaches, its priority and protocol, its classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The qdisc (`1:`) or class it is attached to.
    pub parent: Handle,
    /// Priority (`prio`/`pref`); lower runs first. 0 lets the kernel pick.
    pub prio: u16,
    /// Ethernet protocol (`ETH_P_IP`, `ETH_P_ALL`).
    pub protocol: u16,
    /// Filter handle (the mark for `fw`; a number for `cgroup`; 0 for u32 and
    /// matchall lets the kernel pick).
    pub handle: u32,
    /// What it matches.
    pub classifier: Classifier,
}

impl Filter {
    /// `tcm_info` for this filter: `prio << 16 | htons(protocol)`.
    pub fn info(&self) -> u32 {
        (u32::from(self.prio) << 16) | u32::from(self.protocol.to_be())
    }

    /// A u32 IPv4 filter.
    pub fn u32(parent: Handle, prio: u16, matches: U32Match, flowid: Handle) -> Filter {
        Filter {
            parent,
            prio,
            protocol: ETH_P_IP,
            handle: 0,
            classifier: Classifier::U32 { matches, flowid },
        }
    }

    /// An fw (fwmark) IPv4 filter.
    pub fn fw(parent: Handle, prio: u16, mark: u32, flowid: Handle) -> Filter {
        Filter {
            parent,
            prio,
            protocol: ETH_P_IP,
            handle: mark,
            classifier: Classifier::Fw { mark, flowid },
        }
    }

    /// A cgroup (net_cls) IPv4 filter; `handle` is a plain number (`tc`
    /// reads `handle 1:` as 1).
    pub fn cgroup(parent: Handle, prio: u16, handle: u32) -> Filter {
        Filter {
            parent,
            prio,
            protocol: ETH_P_IP,
            handle,
            classifier: Classifier::Cgroup,
        }
    }

    /// A matchall filter for every protocol.
    pub fn matchall(parent: Handle, prio: u16, classid: Handle) -> Filter {
        Filter {
            parent,
            prio,
            protocol: ETH_P_ALL,
            handle: 0,
            classifier: Classifier::Matchall { classid },
        }
    }
}

// --- request encoders ---

/// Encodes `tc qdisc VERB dev IFINDEX parent P handle H htb ...`.
pub fn encode_htb_qdisc(m: &mut MsgBuf, verb: Verb, seq: u32, ifindex: i32, q: &HtbQdisc) {
    let (ty, flags) = Object::Qdisc.request(verb);
    m.begin(ty, flags, seq);
    m.tcmsg(&TcHeader {
        ifindex,
        handle: q.handle,
        parent: q.parent,
        info: 0,
    });
    if verb == Verb::Delete {
        return;
    }
    m.attr_str(TCA_KIND, "htb");
    let nest = m.nest_start(TCA_OPTIONS);
    // struct tc_htb_glob: version, rate2quantum, defcls, debug, direct_pkts.
    let mut glob = [0u8; 20];
    glob[0..4].copy_from_slice(&TC_HTB_PROTOVER.to_ne_bytes());
    glob[4..8].copy_from_slice(&q.r2q.to_ne_bytes());
    glob[8..12].copy_from_slice(&u32::from(q.default_class).to_ne_bytes());
    m.attr(TCA_HTB_INIT, &glob);
    if let Some(qlen) = q.direct_qlen {
        m.attr_u32(TCA_HTB_DIRECT_QLEN, qlen);
    }
    m.nest_end(nest);
}

/// Encodes `tc qdisc del dev IFINDEX parent P [handle H]` (any kind).
pub fn encode_qdisc_delete(m: &mut MsgBuf, seq: u32, ifindex: i32, parent: Handle, handle: Handle) {
    let (ty, flags) = Object::Qdisc.request(Verb::Delete);
    m.begin(ty, flags, seq);
    m.tcmsg(&TcHeader {
        ifindex,
        handle,
        parent,
        info: 0,
    });
}

/// Encodes `tc qdisc VERB dev IFINDEX parent P handle H LEAF ...`.
pub fn encode_leaf(
    m: &mut MsgBuf,
    verb: Verb,
    seq: u32,
    ifindex: i32,
    parent: Handle,
    handle: Handle,
    leaf: &Leaf,
) {
    let (ty, flags) = Object::Qdisc.request(verb);
    m.begin(ty, flags, seq);
    m.tcmsg(&TcHeader {
        ifindex,
        handle,
        parent,
        info: 0,
    });
    leaf.write(m);
}

/// Encodes `tc class VERB dev IFINDEX parent P classid C htb rate ...`.
///
/// Call [`HtbClass::validate`] first; this only writes bytes.
pub fn encode_htb_class(
    m: &mut MsgBuf,
    verb: Verb,
    seq: u32,
    ifindex: i32,
    class: &HtbClass,
    psched: &Psched,
) {
    let (ty, flags) = Object::Class.request(verb);
    m.begin(ty, flags, seq);
    m.tcmsg(&TcHeader {
        ifindex,
        handle: class.classid,
        parent: class.parent,
        info: 0,
    });
    m.attr_str(TCA_KIND, "htb");
    let nest = m.nest_start(TCA_OPTIONS);
    let p = class.params(psched);
    if p.rate64.0 > u64::from(u32::MAX) {
        m.attr(TCA_HTB_RATE64, &p.rate64.0.to_ne_bytes());
    }
    if p.ceil64.0 > u64::from(u32::MAX) {
        m.attr(TCA_HTB_CEIL64, &p.ceil64.0.to_ne_bytes());
    }
    let mut opt = [0u8; 44];
    let mut w = Vec::with_capacity(44);
    p.write(&mut w);
    opt.copy_from_slice(&w);
    m.attr(TCA_HTB_PARMS, &opt);
    if class.rate_tables {
        for (ty, spec) in [(TCA_HTB_RTAB, &p.rate), (TCA_HTB_CTAB, &p.ceil)] {
            let table = rate_table(psched, spec);
            let mut bytes = [0u8; 1024];
            for (chunk, v) in bytes.chunks_exact_mut(4).zip(table) {
                chunk.copy_from_slice(&v.to_ne_bytes());
            }
            m.attr(ty, &bytes);
        }
    }
    m.nest_end(nest);
}

/// Encodes `tc class del dev IFINDEX classid C`.
pub fn encode_class_delete(m: &mut MsgBuf, seq: u32, ifindex: i32, classid: Handle) {
    let (ty, flags) = Object::Class.request(Verb::Delete);
    m.begin(ty, flags, seq);
    m.tcmsg(&TcHeader {
        ifindex,
        handle: classid,
        parent: Handle::UNSPEC,
        info: 0,
    });
}

/// Encodes `tc filter VERB dev IFINDEX parent P protocol X prio N ...`.
pub fn encode_filter(m: &mut MsgBuf, verb: Verb, seq: u32, ifindex: i32, f: &Filter) {
    let (ty, flags) = Object::Filter.request(verb);
    m.begin(ty, flags, seq);
    m.tcmsg(&TcHeader {
        ifindex,
        handle: Handle(f.handle),
        parent: f.parent,
        info: f.info(),
    });
    m.attr_str(TCA_KIND, f.classifier.kind());
    if verb == Verb::Delete {
        return;
    }
    let nest = m.nest_start(TCA_OPTIONS);
    match &f.classifier {
        Classifier::U32 { matches, flowid } => {
            m.attr_u32(TCA_U32_CLASSID, flowid.0);
            let keys = matches.keys();
            // struct tc_u32_sel: flags, offshift, nkeys, pad, offmask(be16),
            // off, offoff, hoff, hmask(be32), then 16-byte keys.
            let mut sel = Vec::with_capacity(16 + 16 * keys.len());
            sel.extend_from_slice(&[TC_U32_TERMINAL, 0, keys.len() as u8, 0]);
            sel.extend_from_slice(&[0u8; 12]);
            for k in &keys {
                sel.extend_from_slice(&k.mask.to_be_bytes());
                sel.extend_from_slice(&k.val.to_be_bytes());
                sel.extend_from_slice(&k.off.to_ne_bytes());
                sel.extend_from_slice(&k.offmask.to_ne_bytes());
            }
            m.attr(TCA_U32_SEL, &sel);
        }
        Classifier::Fw { flowid, .. } => m.attr_u32(TCA_FW_CLASSID, flowid.0),
        Classifier::Cgroup => {}
        Classifier::Matchall { classid } => m.attr_u32(TCA_MATCHALL_CLASSID, classid.0),
    }
    m.nest_end(nest);
}

/// Encodes a `RTM_GET*` request: a dump of `object`s on a link (`tc -s
/// OBJECT show dev D [parent P]`) when `dump`, else one object by handle.
///
/// A single get asks for an ECHO: the kernel answers `RTM_GETTCLASS`
/// through `rtnetlink_send`, which unicasts to the asker only with
/// `NLM_F_ECHO`. With `ack` it also asks for an ACK, for gets that may have
/// no object to send (a built-in root such as `noqueue`).
pub fn encode_get(
    m: &mut MsgBuf,
    object: Object,
    dump: bool,
    ack: bool,
    seq: u32,
    header: &TcHeader,
) {
    let mut flags = NLM_F_REQUEST;
    if dump {
        flags |= NLM_F_DUMP;
    } else {
        flags |= NLM_F_ECHO;
        if ack {
            flags |= NLM_F_ACK;
        }
    }
    m.begin(object.get_type(), flags, seq);
    m.tcmsg(header);
}

/// Encodes `RTM_GETLINK` for an interface name (what `if_nametoindex` does,
/// but in the socket's network namespace).
pub fn encode_get_link(m: &mut MsgBuf, seq: u32, name: &str) {
    m.begin(RTM_GETLINK, NLM_F_REQUEST, seq);
    m.buf.extend_from_slice(&[0u8; IFINFOMSG_LEN]);
    m.attr_str(IFLA_IFNAME, name);
}

// --- reply decoding ---

/// A netlink message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlHeader {
    /// Total length including this header.
    pub len: u32,
    /// Message type.
    pub ty: u16,
    /// Flags.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Sender port id.
    pub pid: u32,
}

/// Splits a datagram into `(header, payload)` messages.
pub fn messages(mut data: &[u8]) -> impl Iterator<Item = Result<(NlHeader, &[u8]), MsgError>> {
    std::iter::from_fn(move || {
        if data.len() < NLMSG_HDRLEN {
            return None;
        }
        let h = NlHeader {
            len: u32_at(data, 0),
            ty: u16::from_ne_bytes([data[4], data[5]]),
            flags: u16::from_ne_bytes([data[6], data[7]]),
            seq: u32_at(data, 8),
            pid: u32_at(data, 12),
        };
        let len = h.len as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            data = &[];
            return Some(Err(malformed(format!(
                "netlink message length {len} out of bounds"
            ))));
        }
        let payload = &data[NLMSG_HDRLEN..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some(Ok((h, payload)))
    })
}

/// A decoded `NLMSG_ERROR`: 0 is an ACK; otherwise an errno and maybe the
/// kernel's extended-ack text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// Positive errno, 0 for an ACK.
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`, when the kernel sent one.
    pub message: Option<String>,
}

/// Decodes an `NLMSG_ERROR` payload.
pub fn decode_error(flags: u16, payload: &[u8]) -> Result<NlError, MsgError> {
    if payload.len() < 4 + NLMSG_HDRLEN {
        return Err(malformed("short NLMSG_ERROR"));
    }
    let errno = -i32_at(payload, 0);
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            u32_at(payload, 4) as usize
        };
        let start = (4 + echoed + 3) & !3;
        if start <= payload.len() {
            for nla in NlasIterator::new(&payload[start..]).flatten() {
                if nla.kind() == NLMSGERR_ATTR_MSG {
                    let text = nla.value().split(|&b| b == 0).next().unwrap_or(&[]);
                    message = Some(String::from_utf8_lossy(text).into_owned());
                }
            }
        }
    }
    Ok(NlError { errno, message })
}

/// Decodes the ifindex from an `RTM_NEWLINK` payload.
pub fn decode_link_index(payload: &[u8]) -> Result<i32, MsgError> {
    if payload.len() < IFINFOMSG_LEN {
        return Err(malformed("short ifinfomsg"));
    }
    Ok(i32_at(payload, 4))
}

/// Statistics of a qdisc or class (`tc -s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Bytes sent.
    pub bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Packets dropped.
    pub drops: u32,
    /// Times the object was over its limit (HTB: could not send).
    pub overlimits: u32,
    /// Requeues.
    pub requeues: u32,
    /// Backlog in bytes (queued now).
    pub backlog_bytes: u32,
    /// Backlog in packets (`qlen`).
    pub backlog_packets: u32,
    /// HTB class extras, for HTB classes.
    pub htb: Option<HtbXstats>,
}

/// `struct tc_htb_xstats`: borrowing and token state of an HTB class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HtbXstats {
    /// Times it lent to a child.
    pub lends: u32,
    /// Times it borrowed from its parent.
    pub borrows: u32,
    /// Packets larger than the quantum allowed.
    pub giants: u32,
    /// Rate tokens left, in scheduler ticks (negative: in debt).
    pub tokens: i32,
    /// Ceil tokens left, in scheduler ticks.
    pub ctokens: i32,
}

/// Decoded options of a traffic-control object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Options {
    /// An HTB qdisc.
    HtbQdisc {
        /// `r2q`.
        r2q: u32,
        /// `default` class minor.
        default_class: u32,
        /// Packets sent through the direct queue so far.
        direct_packets: u32,
        /// `direct_qlen`, when reported.
        direct_qlen: Option<u32>,
    },
    /// An HTB class.
    HtbClass(HtbClassParams),
    /// `pfifo`/`bfifo` limit.
    Fifo {
        /// Limit in packets (pfifo) or bytes (bfifo).
        limit: u32,
    },
    /// A u32 filter node.
    U32 {
        /// Target class, when the node has one.
        flowid: Option<Handle>,
        /// Selector keys.
        keys: Vec<U32Key>,
        /// Hash-table divisor, for a hash-table node.
        divisor: Option<u32>,
    },
    /// An fw or matchall filter with its target class.
    ClassId(Option<Handle>),
    /// Options not decoded here (raw attribute value).
    Raw(Vec<u8>),
    /// No options attribute.
    None,
}

/// One qdisc, class or filter as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcObject {
    /// Qdisc, class or filter.
    pub object: Object,
    /// Its `tcmsg` header.
    pub header: TcHeader,
    /// `TCA_KIND`: `htb`, `pfifo`, `u32`, ...
    pub kind: String,
    /// Decoded options.
    pub options: Options,
    /// Statistics (`TCA_STATS2`).
    pub stats: Stats,
}

impl TcObject {
    /// For a filter: its priority.
    pub fn prio(&self) -> u16 {
        (self.header.info >> 16) as u16
    }

    /// For a filter: its protocol (host order).
    pub fn protocol(&self) -> u16 {
        u16::from_be(self.header.info as u16)
    }
}

/// Decodes an `RTM_NEWQDISC`/`NEWTCLASS`/`NEWTFILTER` payload.
pub fn decode_tc(ty: u16, payload: &[u8]) -> Result<TcObject, MsgError> {
    let object = match ty {
        RTM_NEWQDISC | RTM_DELQDISC | RTM_GETQDISC => Object::Qdisc,
        RTM_NEWTCLASS | RTM_DELTCLASS | RTM_GETTCLASS => Object::Class,
        RTM_NEWTFILTER | RTM_DELTFILTER | RTM_GETTFILTER => Object::Filter,
        other => {
            return Err(malformed(format!(
                "message type {other} is not traffic control"
            )));
        }
    };
    if payload.len() < TCMSG_LEN {
        return Err(malformed(format!("tcmsg of {} bytes", payload.len())));
    }
    let header = TcHeader {
        ifindex: i32_at(payload, 4),
        handle: Handle(u32_at(payload, 8)),
        parent: Handle(u32_at(payload, 12)),
        info: u32_at(payload, 16),
    };
    let mut kind = String::new();
    let mut options_raw: Option<&[u8]> = None;
    let mut stats = Stats::default();
    let mut xstats: Option<&[u8]> = None;
    for nla in NlasIterator::new(&payload[TCMSG_LEN..]) {
        let nla = nla.map_err(|e| malformed(format!("attribute: {e}")))?;
        let ty = nla.kind();
        let value = nla_value(nla);
        match ty {
            TCA_KIND => {
                let text = value.split(|&b| b == 0).next().unwrap_or(&[]);
                kind = String::from_utf8_lossy(text).into_owned();
            }
            TCA_OPTIONS => options_raw = Some(value),
            TCA_STATS2 => decode_stats2(value, &mut stats, &mut xstats)?,
            TCA_XSTATS if xstats.is_none() => xstats = Some(value),
            _ => {}
        }
    }
    if object == Object::Class
        && kind == "htb"
        && let Some(x) = xstats.filter(|x| x.len() >= 20)
    {
        {
            stats.htb = Some(HtbXstats {
                lends: u32_at(x, 0),
                borrows: u32_at(x, 4),
                giants: u32_at(x, 8),
                tokens: i32_at(x, 12),
                ctokens: i32_at(x, 16),
            });
        }
    }
    let options = match options_raw {
        None => Options::None,
        Some(raw) => decode_options(object, &kind, raw)?,
    };
    Ok(TcObject {
        object,
        header,
        kind,
        options,
        stats,
    })
}

fn decode_stats2<'a>(
    value: &'a [u8],
    stats: &mut Stats,
    xstats: &mut Option<&'a [u8]>,
) -> Result<(), MsgError> {
    for nla in NlasIterator::new(value) {
        let nla = nla.map_err(|e| malformed(format!("stats attribute: {e}")))?;
        let kind = nla.kind();
        let v = nla_value(nla);
        match kind {
            TCA_STATS_BASIC if v.len() >= 12 => {
                stats.bytes = u64_at(v, 0);
                stats.packets = stats.packets.max(u64::from(u32_at(v, 8)));
            }
            TCA_STATS_PKT64 if v.len() >= 8 => stats.packets = u64_at(v, 0),
            TCA_STATS_QUEUE if v.len() >= 20 => {
                stats.backlog_packets = u32_at(v, 0);
                stats.backlog_bytes = u32_at(v, 4);
                stats.drops = u32_at(v, 8);
                stats.requeues = u32_at(v, 12);
                stats.overlimits = u32_at(v, 16);
            }
            TCA_STATS_APP => *xstats = Some(v),
            _ => {}
        }
    }
    Ok(())
}

fn decode_options(object: Object, kind: &str, raw: &[u8]) -> Result<Options, MsgError> {
    let attrs = || NlasIterator::new(raw);
    Ok(match (object, kind) {
        (Object::Qdisc, "htb") => {
            let mut out = Options::HtbQdisc {
                r2q: 0,
                default_class: 0,
                direct_packets: 0,
                direct_qlen: None,
            };
            for nla in attrs() {
                let nla = nla.map_err(|e| malformed(format!("htb attribute: {e}")))?;
                let v = nla.value();
                if let Options::HtbQdisc {
                    r2q,
                    default_class,
                    direct_packets,
                    direct_qlen,
                } = &mut out
                {
                    match nla.kind() {
                        TCA_HTB_INIT if v.len() >= 20 => {
                            *r2q = u32_at(v, 4);
                            *default_class = u32_at(v, 8);
                            *direct_packets = u32_at(v, 16);
                        }
                        TCA_HTB_DIRECT_QLEN if v.len() >= 4 => *direct_qlen = Some(u32_at(v, 0)),
                        _ => {}
                    }
                }
            }
            out
        }
        (Object::Class, "htb") => {
            let mut p = HtbClassParams::default();
            let (mut r64, mut c64) = (None, None);
            for nla in attrs() {
                let nla = nla.map_err(|e| malformed(format!("htb class attribute: {e}")))?;
                let v = nla.value();
                match nla.kind() {
                    TCA_HTB_PARMS if v.len() >= 44 => {
                        p.rate = RateSpec::read(&v[0..12]);
                        p.ceil = RateSpec::read(&v[12..24]);
                        p.buffer = u32_at(v, 24);
                        p.cbuffer = u32_at(v, 28);
                        p.quantum = u32_at(v, 32);
                        p.level = u32_at(v, 36);
                        p.prio = u32_at(v, 40);
                    }
                    TCA_HTB_RATE64 if v.len() >= 8 => r64 = Some(u64_at(v, 0)),
                    TCA_HTB_CEIL64 if v.len() >= 8 => c64 = Some(u64_at(v, 0)),
                    _ => {}
                }
            }
            p.rate64 = Rate(r64.unwrap_or(u64::from(p.rate.rate)));
            p.ceil64 = Rate(c64.unwrap_or(u64::from(p.ceil.rate)));
            Options::HtbClass(p)
        }
        (Object::Qdisc, "pfifo" | "bfifo") if raw.len() >= 4 => Options::Fifo {
            limit: u32_at(raw, 0),
        },
        (Object::Filter, "u32") => {
            let (mut flowid, mut keys, mut divisor) = (None, Vec::new(), None);
            for nla in attrs() {
                let nla = nla.map_err(|e| malformed(format!("u32 attribute: {e}")))?;
                let v = nla.value();
                match nla.kind() {
                    TCA_U32_CLASSID if v.len() >= 4 => flowid = Some(Handle(u32_at(v, 0))),
                    TCA_U32_DIVISOR if v.len() >= 4 => divisor = Some(u32_at(v, 0)),
                    TCA_U32_SEL if v.len() >= 16 => {
                        let n = usize::from(v[2]);
                        if v.len() < 16 + 16 * n {
                            return Err(malformed(format!(
                                "u32 selector with {n} keys in {} bytes",
                                v.len()
                            )));
                        }
                        for k in v[16..16 + 16 * n].chunks_exact(16) {
                            keys.push(U32Key {
                                mask: u32::from_be_bytes([k[0], k[1], k[2], k[3]]),
                                val: u32::from_be_bytes([k[4], k[5], k[6], k[7]]),
                                off: i32_at(k, 8),
                                offmask: i32_at(k, 12),
                            });
                        }
                    }
                    _ => {}
                }
            }
            Options::U32 {
                flowid,
                keys,
                divisor,
            }
        }
        (Object::Filter, "fw" | "matchall") => {
            let mut classid = None;
            for nla in attrs().flatten() {
                // TCA_FW_CLASSID and TCA_MATCHALL_CLASSID are both 1.
                if nla.kind() == TCA_FW_CLASSID && nla.value().len() >= 4 {
                    classid = Some(Handle(u32_at(nla.value(), 0)));
                }
            }
            Options::ClassId(classid)
        }
        _ => Options::Raw(raw.to_vec()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_request(m: &mut MsgBuf) -> TcObject {
        let bytes = m.finish().to_vec();
        let mut it = messages(&bytes);
        let (h, payload) = it.next().unwrap().unwrap();
        assert!(it.next().is_none());
        assert_eq!(h.len as usize, bytes.len());
        decode_tc(h.ty, payload).unwrap()
    }

    proptest! {
        #[test]
        fn class_encode_decode_round_trip(
            minor in 1u16..,
            rate in 1u64..100_000_000_000,
            ceil in proptest::option::of(1u64..100_000_000_000),
            burst in proptest::option::of(0u32..64_000_000),
            cburst in proptest::option::of(0u32..64_000_000),
            prio in 0u32..=7,
            quantum in proptest::option::of(1000u32..200_000),
            tables: bool,
        ) {
            let mut class = HtbClass::new(Handle::new(1, 0), Handle::new(1, minor), Rate(rate));
            class.ceil = ceil.map(Rate);
            class.burst = burst;
            class.cburst = cburst;
            class.prio = prio;
            class.quantum = quantum;
            class.rate_tables = tables;
            prop_assert!(class.validate().is_ok());
            let p = Psched::LINUX_DEFAULT;
            let mut m = MsgBuf::new();
            encode_htb_class(&mut m, Verb::Change, 7, 42, &class, &p);
            let obj = decode_request(&mut m);
            prop_assert_eq!(obj.header.ifindex, 42);
            prop_assert_eq!(obj.header.handle, class.classid);
            prop_assert_eq!(obj.options, Options::HtbClass(class.params(&p)));
            // 64-bit rates survive although the ratespec saturates.
            prop_assert_eq!(class.params(&p).rate64, Rate(rate));
        }

        #[test]
        fn u32_match_round_trip(
            src in proptest::option::of((any::<u32>(), 0u8..=32)),
            dst in proptest::option::of((any::<u32>(), 0u8..=32)),
            sport: Option<u16>,
            dport: Option<u16>,
            flow in 1u16..,
        ) {
            let norm = |(a, l): (u32, u8)| (Ipv4Addr::from(a & prefix_mask(l)), l);
            let m = U32Match { src: src.map(norm), dst: dst.map(norm), sport, dport };
            let f = Filter::u32(Handle::new(1, 0), 9, m, Handle::new(1, flow));
            let mut buf = MsgBuf::new();
            encode_filter(&mut buf, Verb::Add, 1, 3, &f);
            let obj = decode_request(&mut buf);
            prop_assert_eq!(obj.prio(), 9);
            let Options::U32 { flowid, keys, .. } = obj.options else { panic!("not u32") };
            prop_assert_eq!(flowid, Some(Handle::new(1, flow)));
            let back = U32Match::from_keys(&keys).unwrap();
            // A /0 prefix matches anything; it round-trips as itself.
            prop_assert_eq!(back, m);
        }
    }

    #[test]
    fn u32_keys_merge_ports_like_tc() {
        let m = U32Match {
            src: Some((Ipv4Addr::new(10, 1, 0, 1), 32)),
            dst: Some((Ipv4Addr::new(10, 1, 0, 2), 32)),
            sport: Some(4000),
            dport: Some(5001),
        };
        let keys = m.keys();
        assert_eq!(keys.len(), 3);
        assert_eq!(
            keys[2],
            U32Key {
                mask: u32::MAX,
                val: 0x0fa0_1389,
                off: 20,
                offmask: 0
            }
        );
        assert_eq!(U32Match::from_keys(&keys), Some(m));
    }

    #[test]
    fn u32_prefix_masks_value() {
        let m = U32Match {
            src: None,
            dst: Some((Ipv4Addr::new(10, 2, 3, 4), 16)),
            sport: None,
            dport: None,
        };
        assert_eq!(
            m.keys()[0],
            U32Key {
                mask: 0xffff_0000,
                val: 0x0a02_0000,
                off: 16,
                offmask: 0
            }
        );
    }

    #[test]
    fn class_validation_rejects_bad_values() {
        let ok = HtbClass::new(Handle::new(1, 0), Handle::new(1, 0x10), Rate::mbit(1));
        assert!(ok.validate().is_ok());
        assert!(
            HtbClass {
                rate: Rate(0),
                ..ok
            }
            .validate()
            .is_err()
        );
        assert!(ok.prio(8).validate().is_err());
        assert!(
            HtbClass {
                classid: Handle::new(1, 0),
                ..ok
            }
            .validate()
            .is_err()
        );
        let err = HtbClass {
            parent: Handle::new(2, 0),
            ..ok
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("1:10"), "{err}");
    }

    #[test]
    fn decode_error_reads_extack_text() {
        // NLMSG_ERROR payload: -EINVAL, capped echoed header, then NLMSGERR_ATTR_MSG.
        let mut p = Vec::new();
        p.extend_from_slice(&(-22i32).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]);
        p.extend_from_slice(&12u16.to_ne_bytes());
        p.extend_from_slice(&1u16.to_ne_bytes());
        p.extend_from_slice(b"bad rate\0\0\0\0");
        let e = decode_error(NLM_F_CAPPED | NLM_F_ACK_TLVS, &p).unwrap();
        assert_eq!(
            e,
            NlError {
                errno: 22,
                message: Some("bad rate".into())
            }
        );
        assert!(decode_error(0, &p[..8]).is_err());
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let mut m = MsgBuf::new();
        m.begin(RTM_NEWTCLASS, 0, 1);
        m.tcmsg(&TcHeader::default());
        m.attr_str(TCA_KIND, "htb");
        let bytes = m.finish().to_vec();
        for cut in 0..bytes.len() {
            let _ = messages(&bytes[..cut]).collect::<Vec<_>>();
            let _ = decode_tc(RTM_NEWTCLASS, &bytes[NLMSG_HDRLEN.min(cut)..cut]);
        }
        let (h, payload) = messages(&bytes).next().unwrap().unwrap();
        let obj = decode_tc(h.ty, payload).unwrap();
        assert_eq!(obj.kind, "htb");
    }
}
