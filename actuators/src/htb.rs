//! [`BandwidthShaper`] on `tc-htb`'s [`tc_htb::Tc`]: reads an HTB class's
//! rate and ceil and changes them over rtnetlink, keeping the class's
//! parent and prio, and its burst and cburst when they were set by hand —
//! the equivalent of
//! `tc class change dev IF parent P classid X htb rate R ceil C prio N [burst B cburst CB]`.

use std::collections::HashMap;

use tc_htb::{Handle, HtbClass, Link, Options, Rate, Tc};

use crate::backend::{BackendError, BandwidthShaper};

/// Errors of the HTB adapter that `tc-htb` does not report itself.
#[derive(Debug, thiserror::Error)]
pub enum HtbAdapterError {
    /// The class exists but is not an HTB class.
    #[error("class {class} on {iface} is a {kind} class, not htb")]
    NotHtb {
        /// Interface.
        iface: String,
        /// Class id.
        class: String,
        /// Its kind.
        kind: String,
    },
}

/// HTB classes through `tc-htb` (one rtnetlink socket, links cached by name).
pub struct HtbShaper {
    tc: Tc,
    links: HashMap<String, Link>,
}

impl std::fmt::Debug for HtbShaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtbShaper")
            .field("links", &self.links.len())
            .finish()
    }
}

impl HtbShaper {
    /// A shaper on an opened `Tc` (host namespace: `Tc::open()`; a network
    /// namespace: `Tc::open_in_netns(path)`).
    pub fn new(tc: Tc) -> HtbShaper {
        HtbShaper {
            tc,
            links: HashMap::new(),
        }
    }

    fn link(&mut self, iface: &str) -> Result<Link, BackendError> {
        if let Some(l) = self.links.get(iface) {
            return Ok(l.clone());
        }
        let l = self.tc.link(iface)?;
        self.links.insert(iface.to_string(), l.clone());
        Ok(l)
    }

    fn class(
        &mut self,
        iface: &str,
        class: &str,
    ) -> Result<(Link, tc_htb::TcObject), BackendError> {
        let link = self.link(iface)?;
        let id: Handle = class.parse()?;
        let obj = match self.tc.class_get(&link, id) {
            Ok(o) => o,
            Err(e) => {
                // The interface may have been re-created with a new index.
                self.links.remove(iface);
                return Err(e.into());
            }
        };
        Ok((link, obj))
    }
}

impl BandwidthShaper for HtbShaper {
    fn class_rate(&mut self, iface: &str, class: &str) -> Result<(u64, u64), BackendError> {
        let (_, obj) = self.class(iface, class)?;
        match obj.options {
            Options::HtbClass(p) => Ok((p.rate64.bits_per_sec(), p.ceil64.bits_per_sec())),
            _ => Err(HtbAdapterError::NotHtb {
                iface: iface.into(),
                class: class.into(),
                kind: obj.kind,
            }
            .into()),
        }
    }

    fn set_class_rate(
        &mut self,
        iface: &str,
        class: &str,
        rate_bps: u64,
        ceil_bps: u64,
    ) -> Result<(), BackendError> {
        let (link, obj) = self.class(iface, class)?;
        let Options::HtbClass(p) = &obj.options else {
            return Err(HtbAdapterError::NotHtb {
                iface: iface.into(),
                class: class.into(),
                kind: obj.kind,
            }
            .into());
        };
        let classid = obj.header.handle;
        // The kernel reports a class directly under the qdisc as `root`.
        let parent = if obj.header.parent == Handle::ROOT {
            classid.qdisc()
        } else {
            obj.header.parent
        };
        let ps = *self.tc.psched();
        // A burst that is `tc`'s default for the current rate stays the
        // default (recomputed for the new rate, so a revert restores it
        // exactly); a custom one is kept in bytes.
        let defaults = HtbClass::new(parent, classid, p.rate64)
            .ceil(p.ceil64)
            .params(&ps);
        let mut new = HtbClass::new(parent, classid, Rate::from_bits_per_sec(rate_bps))
            .ceil(Rate::from_bits_per_sec(ceil_bps))
            .prio(p.prio);
        if p.buffer != defaults.buffer {
            new.burst = Some(p.burst_bytes(&ps));
        }
        if p.cbuffer != defaults.cbuffer {
            new.cburst = Some(p.cburst_bytes(&ps));
        }
        Ok(self.tc.class_change(&link, &new)?)
    }
}
