//! [`Tc`]: a synchronous rtnetlink socket that configures and reads traffic
//! control on the links of one network namespace.
//!
//! Every request reuses the same send and receive buffers, so a class change
//! costs one `send`, one `recv` and no allocation on success.

use std::fs::File;
use std::path::Path;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::HtbError;
use crate::handle::Handle;
use crate::msg::{
    self, Filter, HtbClass, HtbQdisc, Leaf, MsgBuf, NLMSG_DONE, NLMSG_ERROR, Object, RTM_NEWLINK,
    Stats, TcHeader, TcObject, Verb,
};
use crate::rate::Psched;

const RECV_BUF: usize = 64 * 1024;

/// How long to wait for the kernel's answer before giving up with `EAGAIN`
/// (the kernel answers in microseconds; this only guards against a hang).
pub const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A network interface in the socket's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its name, for messages.
    pub name: String,
    /// Its ifindex.
    pub index: i32,
}

/// An rtnetlink socket bound to one network namespace.
#[derive(Debug)]
pub struct Tc {
    sock: Socket,
    seq: u32,
    psched: Psched,
    tx: MsgBuf,
    rx: Vec<u8>,
    netns: String,
    warning: Option<String>,
}

fn new_socket(netns: &str) -> Result<Socket, HtbError> {
    let err = |source| HtbError::Socket {
        netns: netns.to_string(),
        source,
    };
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(err)?;
    sock.bind_auto().map_err(err)?;
    sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
    // Best effort: older kernels lack these; errors are then plain errnos.
    let _ = sock.set_ext_ack(true);
    let _ = sock.set_cap_ack(true);
    let timeout = nix::sys::time::TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0);
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(|e| err(std::io::Error::from(e)))?;
    Ok(sock)
}

impl Tc {
    /// Opens a socket in the calling thread's network namespace, with the
    /// scheduler clock of `/proc/net/psched`.
    pub fn open() -> Result<Tc, HtbError> {
        let netns = "(current)".to_string();
        let sock = new_socket(&netns)?;
        Ok(Tc::from_socket(sock, netns, Psched::discover()?))
    }

    /// Opens a socket inside the network namespace at `path` (e.g.
    /// `/run/netns/NAME`, what `ip netns add NAME` creates; `tc -n NAME`).
    /// The calling thread's namespace is left alone.
    pub fn open_in_netns(path: impl AsRef<Path>) -> Result<Tc, HtbError> {
        let path = path.as_ref();
        let netns = path.display().to_string();
        let netns_err = |source| HtbError::Netns {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(netns_err)?;
        let sock = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| netns_err(std::io::Error::from(e)))?;
                new_socket(&netns)
            })
            .join()
        })
        .unwrap_or_else(|_| {
            Err(netns_err(std::io::Error::other(
                "thread entering the namespace panicked",
            )))
        })?;
        Ok(Tc::from_socket(sock, netns, Psched::discover()?))
    }

    fn from_socket(sock: Socket, netns: String, psched: Psched) -> Tc {
        Tc {
            sock,
            seq: 0,
            psched,
            tx: MsgBuf::new(),
            rx: Vec::with_capacity(RECV_BUF),
            netns,
            warning: None,
        }
    }

    /// Uses `psched` instead of this machine's `/proc/net/psched`.
    pub fn with_psched(mut self, psched: Psched) -> Tc {
        self.psched = psched;
        self
    }

    /// The scheduler clock bursts are converted with.
    pub fn psched(&self) -> &Psched {
        &self.psched
    }

    /// The kernel's warning on the last successful change, if it gave one
    /// (what `tc` prints as `Warning: ...`, e.g. "sch_htb: quantum of class
    /// 10010 is big. Consider r2q change."); taking it clears it.
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    /// The namespace this socket works in, for messages.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn op(&self, text: std::fmt::Arguments<'_>) -> String {
        format!("`tc {text}` (netns {})", self.netns)
    }

    /// Looks up an interface by name (`ip link show NAME`).
    pub fn link(&mut self, name: &str) -> Result<Link, HtbError> {
        let seq = self.next_seq();
        msg::encode_get_link(&mut self.tx, seq, name);
        let netns = self.netns.clone();
        let op = || format!("`ip link show {name}` (netns {netns})");
        self.send()
            .map_err(|source| HtbError::Io { op: op(), source })?;
        loop {
            self.recv()
                .map_err(|source| HtbError::Io { op: op(), source })?;
            for m in msg::messages(&self.rx) {
                let (h, payload) = m.map_err(|source| HtbError::Msg { op: op(), source })?;
                if h.seq != seq {
                    continue;
                }
                match h.ty {
                    RTM_NEWLINK => {
                        let index = msg::decode_link_index(payload)
                            .map_err(|source| HtbError::Msg { op: op(), source })?;
                        return Ok(Link {
                            name: name.to_string(),
                            index,
                        });
                    }
                    NLMSG_ERROR => {
                        let e = msg::decode_error(h.flags, payload)
                            .map_err(|source| HtbError::Msg { op: op(), source })?;
                        if e.errno == libc::ENODEV || e.errno == libc::ENOENT {
                            return Err(HtbError::NoSuchInterface {
                                name: name.to_string(),
                                netns: self.netns.clone(),
                            });
                        }
                        return Err(kernel_error(op(), e));
                    }
                    _ => {}
                }
            }
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let bytes = self.tx.finish();
        self.sock.send(bytes, 0).map(|_| ())
    }

    fn recv(&mut self) -> std::io::Result<()> {
        self.rx.clear();
        self.sock.recv(&mut self.rx, 0).map(|_| ())
    }

    /// Sends the encoded request and waits for its ACK.
    fn transact(&mut self, seq: u32, op: &dyn Fn(&Tc) -> String) -> Result<(), HtbError> {
        self.warning = None;
        self.send().map_err(|source| HtbError::Io {
            op: op(self),
            source,
        })?;
        loop {
            self.recv().map_err(|source| HtbError::Io {
                op: op(self),
                source,
            })?;
            let mut result = None;
            for m in msg::messages(&self.rx) {
                let (h, payload) = match m {
                    Ok(m) => m,
                    Err(source) => {
                        result = Some(Err(source));
                        break;
                    }
                };
                if h.seq == seq && h.ty == NLMSG_ERROR {
                    result = Some(msg::decode_error(h.flags, payload));
                    break;
                }
            }
            match result {
                None => continue,
                Some(Err(source)) => {
                    return Err(HtbError::Msg {
                        op: op(self),
                        source,
                    });
                }
                Some(Ok(e)) if e.errno == 0 => {
                    self.warning = e.message;
                    return Ok(());
                }
                Some(Ok(e)) => return Err(kernel_error(op(self), e)),
            }
        }
    }

    /// Sends the encoded get/dump request and collects the objects, until
    /// `NLMSG_DONE` or an ACK, or (with `first`) the first object.
    fn collect(
        &mut self,
        seq: u32,
        first: bool,
        op: &dyn Fn(&Tc) -> String,
    ) -> Result<Vec<TcObject>, HtbError> {
        self.send().map_err(|source| HtbError::Io {
            op: op(self),
            source,
        })?;
        let mut out = Vec::new();
        loop {
            self.recv().map_err(|source| HtbError::Io {
                op: op(self),
                source,
            })?;
            let mut done = false;
            for m in msg::messages(&self.rx) {
                let (h, payload) = m.map_err(|source| HtbError::Msg {
                    op: op(self),
                    source,
                })?;
                if h.seq != seq {
                    continue;
                }
                match h.ty {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let e = msg::decode_error(h.flags, payload).map_err(|source| {
                            HtbError::Msg {
                                op: op(self),
                                source,
                            }
                        })?;
                        if e.errno != 0 {
                            return Err(kernel_error(op(self), e));
                        }
                        done = true;
                    }
                    ty => {
                        out.push(msg::decode_tc(ty, payload).map_err(|source| HtbError::Msg {
                            op: op(self),
                            source,
                        })?);
                        done |= first;
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    // --- qdiscs ---

    fn htb_qdisc(&mut self, link: &Link, verb: Verb, q: &HtbQdisc) -> Result<(), HtbError> {
        let seq = self.next_seq();
        msg::encode_htb_qdisc(&mut self.tx, verb, seq, link.index, q);
        self.transact(seq, &|tc| {
            tc.op(format_args!(
                "qdisc {} dev {} parent {} handle {} htb default {:x}",
                verb.as_str(),
                link.name,
                q.parent,
                q.handle,
                q.default_class
            ))
        })
    }

    /// `tc qdisc add dev D root handle 1: htb default 10 r2q 10 [direct_qlen N]`.
    pub fn qdisc_add(&mut self, link: &Link, q: &HtbQdisc) -> Result<(), HtbError> {
        self.htb_qdisc(link, Verb::Add, q)
    }

    /// `tc qdisc replace dev D root handle 1: htb ...`: creates it, or
    /// replaces another kind of qdisc at that place. (HTB cannot change
    /// `default`/`r2q` of an existing HTB in place: the kernel says
    /// "Change operation not supported".)
    pub fn qdisc_replace(&mut self, link: &Link, q: &HtbQdisc) -> Result<(), HtbError> {
        self.htb_qdisc(link, Verb::Replace, q)
    }

    /// `tc qdisc change dev D root handle 1: htb ...` (rejected by kernels
    /// whose HTB has no change operation, like 6.x; kept for completeness).
    pub fn qdisc_change(&mut self, link: &Link, q: &HtbQdisc) -> Result<(), HtbError> {
        self.htb_qdisc(link, Verb::Change, q)
    }

    /// `tc qdisc del dev D parent P [handle H]` (any kind; `parent root`
    /// deletes the root and with it every class and filter).
    pub fn qdisc_del(
        &mut self,
        link: &Link,
        parent: Handle,
        handle: Handle,
    ) -> Result<(), HtbError> {
        let seq = self.next_seq();
        msg::encode_qdisc_delete(&mut self.tx, seq, link.index, parent, handle);
        self.transact(seq, &|tc| {
            tc.op(format_args!(
                "qdisc del dev {} parent {} handle {}",
                link.name, parent, handle
            ))
        })
    }

    /// `tc qdisc del dev D root`: removes the root qdisc, restoring the
    /// link's default (unshaped) queueing.
    pub fn root_del(&mut self, link: &Link) -> Result<(), HtbError> {
        self.qdisc_del(link, Handle::ROOT, Handle::UNSPEC)
    }

    fn leaf(
        &mut self,
        link: &Link,
        verb: Verb,
        parent: Handle,
        handle: Handle,
        leaf: &Leaf,
    ) -> Result<(), HtbError> {
        let seq = self.next_seq();
        msg::encode_leaf(&mut self.tx, verb, seq, link.index, parent, handle, leaf);
        self.transact(seq, &|tc| {
            tc.op(format_args!(
                "qdisc {} dev {} parent {} handle {} {}",
                verb.as_str(),
                link.name,
                parent,
                handle,
                leaf.kind()
            ))
        })
    }

    /// `tc qdisc add dev D parent 1:10 handle 10: pfifo|bfifo|sfq|fq_codel ...`.
    pub fn leaf_add(
        &mut self,
        link: &Link,
        parent: Handle,
        handle: Handle,
        leaf: &Leaf,
    ) -> Result<(), HtbError> {
        self.leaf(link, Verb::Add, parent, handle, leaf)
    }

    /// `tc qdisc replace dev D parent 1:10 handle 10: ...`.
    pub fn leaf_replace(
        &mut self,
        link: &Link,
        parent: Handle,
        handle: Handle,
        leaf: &Leaf,
    ) -> Result<(), HtbError> {
        self.leaf(link, Verb::Replace, parent, handle, leaf)
    }

    // --- classes ---

    fn class(&mut self, link: &Link, verb: Verb, class: &HtbClass) -> Result<(), HtbError> {
        let op = |tc: &Tc| {
            tc.op(format_args!(
                "class {} dev {} parent {} classid {} htb rate {} ceil {}",
                verb.as_str(),
                link.name,
                class.parent,
                class.classid,
                class.rate,
                class.effective_ceil()
            ))
        };
        class.validate().map_err(|source| HtbError::Msg {
            op: op(self),
            source,
        })?;
        let seq = self.next_seq();
        msg::encode_htb_class(&mut self.tx, verb, seq, link.index, class, &self.psched);
        self.transact(seq, &op)
    }

    /// `tc class add dev D parent 1: classid 1:10 htb rate R [ceil C] [burst
    /// B] [cburst CB] [prio P] [quantum Q]`.
    pub fn class_add(&mut self, link: &Link, class: &HtbClass) -> Result<(), HtbError> {
        self.class(link, Verb::Add, class)
    }

    /// `tc class replace dev D parent 1: classid 1:10 htb ...`: add or change.
    pub fn class_replace(&mut self, link: &Link, class: &HtbClass) -> Result<(), HtbError> {
        self.class(link, Verb::Replace, class)
    }

    /// `tc class change dev D parent 1: classid 1:10 htb rate R ...`: the hot
    /// path (one send, one receive, no allocation).
    pub fn class_change(&mut self, link: &Link, class: &HtbClass) -> Result<(), HtbError> {
        self.class(link, Verb::Change, class)
    }

    /// `tc class del dev D classid 1:10` (fails with EBUSY while a filter or
    /// child class still points at it).
    pub fn class_del(&mut self, link: &Link, classid: Handle) -> Result<(), HtbError> {
        let seq = self.next_seq();
        msg::encode_class_delete(&mut self.tx, seq, link.index, classid);
        self.transact(seq, &|tc| {
            tc.op(format_args!(
                "class del dev {} classid {}",
                link.name, classid
            ))
        })
    }

    // --- filters ---

    fn filter(&mut self, link: &Link, verb: Verb, f: &Filter) -> Result<(), HtbError> {
        let seq = self.next_seq();
        msg::encode_filter(&mut self.tx, verb, seq, link.index, f);
        self.transact(seq, &|tc| {
            tc.op(format_args!(
                "filter {} dev {} parent {} protocol {:#06x} prio {} handle {:#x} {}",
                verb.as_str(),
                link.name,
                f.parent,
                f.protocol,
                f.prio,
                f.handle,
                f.classifier.kind()
            ))
        })
    }

    /// `tc filter add dev D parent 1: protocol ip prio N u32|fw|cgroup|matchall ...`.
    pub fn filter_add(&mut self, link: &Link, f: &Filter) -> Result<(), HtbError> {
        self.filter(link, Verb::Add, f)
    }

    /// `tc filter replace dev D parent 1: ...`.
    pub fn filter_replace(&mut self, link: &Link, f: &Filter) -> Result<(), HtbError> {
        self.filter(link, Verb::Replace, f)
    }

    /// `tc filter del dev D parent 1: protocol ip prio N [handle H] KIND`:
    /// with handle 0, every filter of that priority goes.
    pub fn filter_del(&mut self, link: &Link, f: &Filter) -> Result<(), HtbError> {
        self.filter(link, Verb::Delete, f)
    }

    // --- reading ---

    fn dump(
        &mut self,
        object: Object,
        link: &Link,
        parent: Handle,
    ) -> Result<Vec<TcObject>, HtbError> {
        let seq = self.next_seq();
        let header = TcHeader {
            ifindex: link.index,
            parent,
            ..TcHeader::default()
        };
        msg::encode_get(&mut self.tx, object, true, false, seq, &header);
        let mut out = self.collect(seq, false, &|tc| {
            tc.op(format_args!(
                "-s {} show dev {}",
                object.as_str(),
                link.name
            ))
        })?;
        out.retain(|o| o.header.ifindex == link.index);
        Ok(out)
    }

    /// `tc -s qdisc show dev D`: every qdisc of the link, with statistics.
    pub fn qdiscs(&mut self, link: &Link) -> Result<Vec<TcObject>, HtbError> {
        self.dump(Object::Qdisc, link, Handle::UNSPEC)
    }

    /// `tc -s class show dev D`: every class of the link, with statistics.
    pub fn classes(&mut self, link: &Link) -> Result<Vec<TcObject>, HtbError> {
        self.dump(Object::Class, link, Handle::UNSPEC)
    }

    /// `tc filter show dev D parent P`: the filters attached to `parent`
    /// (a qdisc such as `1:`; [`Handle::UNSPEC`] for the root qdisc).
    pub fn filters(&mut self, link: &Link, parent: Handle) -> Result<Vec<TcObject>, HtbError> {
        self.dump(Object::Filter, link, parent)
    }

    /// One object; `may_be_absent` asks for an ACK so that a get the kernel
    /// answers with nothing ends (costs a second message otherwise).
    fn get_one(
        &mut self,
        object: Object,
        link: &Link,
        parent: Handle,
        handle: Handle,
        may_be_absent: bool,
    ) -> Result<Option<TcObject>, HtbError> {
        let seq = self.next_seq();
        let header = TcHeader {
            ifindex: link.index,
            handle,
            parent,
            info: 0,
        };
        msg::encode_get(&mut self.tx, object, false, may_be_absent, seq, &header);
        let op = |tc: &Tc| {
            tc.op(format_args!(
                "-s {} get dev {} parent {} handle {}",
                object.as_str(),
                link.name,
                parent,
                handle
            ))
        };
        Ok(self.collect(seq, !may_be_absent, &op)?.pop())
    }

    /// One class with its parameters and statistics (`tc -s class show dev
    /// D classid 1:10`), read with a single `RTM_GETTCLASS` (no dump).
    pub fn class_get(&mut self, link: &Link, classid: Handle) -> Result<TcObject, HtbError> {
        let op = |tc: &Tc| {
            tc.op(format_args!(
                "-s class show dev {} classid {classid}",
                link.name
            ))
        };
        self.get_one(Object::Class, link, Handle::UNSPEC, classid, false)?
            .ok_or_else(|| HtbError::Kernel {
                op: op(self),
                message: Some("the kernel sent no class".into()),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            })
    }

    /// Statistics of one class: bytes, packets, drops, overlimits, backlog
    /// (the queue depth), HTB tokens.
    pub fn class_stats(&mut self, link: &Link, classid: Handle) -> Result<Stats, HtbError> {
        Ok(self.class_get(link, classid)?.stats)
    }

    /// The root qdisc of the link (`tc -s qdisc show dev D root`): kind,
    /// handle, options and statistics, including the link's total backlog.
    /// `None` when the root is the kernel's built-in default (`noqueue`,
    /// which the kernel does not report).
    pub fn root_get(&mut self, link: &Link) -> Result<Option<TcObject>, HtbError> {
        self.get_one(Object::Qdisc, link, Handle::ROOT, Handle::UNSPEC, true)
    }
}

fn kernel_error(op: String, e: msg::NlError) -> HtbError {
    if e.errno == libc::EPERM && !has_net_admin() {
        return HtbError::MissingCapability { op };
    }
    HtbError::Kernel {
        op,
        message: e.message,
        source: std::io::Error::from_raw_os_error(e.errno),
    }
}

/// Whether the calling thread holds `CAP_NET_ADMIN` in its effective set
/// (needed for every change; reading needs nothing).
pub fn has_net_admin() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_NET_ADMIN,
    )
    .unwrap_or(false)
}
