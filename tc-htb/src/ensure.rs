//! The idempotent layer: "this link has this HTB root; this class has rate R
//! and ceil C", applied with the least change and reporting what changed.

use std::fmt;

use crate::error::HtbError;
use crate::handle::Handle;
use crate::msg::{HtbClass, HtbQdisc, Leaf, Options};
use crate::tc::{Link, Tc};

/// What an `ensure_*` call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Already as asked; nothing sent.
    Unchanged,
    /// Did not exist; created.
    Created,
    /// Existed with other parameters; changed in place. Each entry reads
    /// `field old -> new`.
    Updated(Vec<String>),
    /// Existed as something else at that place; replaced (what it was).
    Replaced(String),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Unchanged => f.write_str("unchanged"),
            Change::Created => f.write_str("created"),
            Change::Updated(d) => write!(f, "updated: {}", d.join(", ")),
            Change::Replaced(what) => write!(f, "replaced {what}"),
        }
    }
}

impl Tc {
    /// Makes sure `link`'s root is the HTB qdisc `q`.
    ///
    /// Creates it when the root is the default (`noqueue`, `pfifo_fast`, ...)
    /// or another kind (replacing it). An HTB root with another handle,
    /// `default` or `r2q` cannot be changed in place: that is an error,
    /// because recreating it would drop every class; delete the root
    /// ([`Tc::root_del`]) first if that is meant.
    pub fn ensure_root(&mut self, link: &Link, q: &HtbQdisc) -> Result<Change, HtbError> {
        let Some(root) = self.root_get(link)? else {
            self.qdisc_replace(link, q)?;
            return Ok(Change::Created);
        };
        if root.kind == "htb" {
            let mut diffs = Vec::new();
            if root.header.handle != q.handle {
                diffs.push(format!("handle {} -> {}", root.header.handle, q.handle));
            }
            if let Options::HtbQdisc {
                r2q,
                default_class,
                direct_qlen,
                ..
            } = root.options
            {
                if default_class != u32::from(q.default_class) {
                    diffs.push(format!(
                        "default {default_class:x} -> {:x}",
                        q.default_class
                    ));
                }
                if r2q != q.r2q {
                    diffs.push(format!("r2q {r2q} -> {}", q.r2q));
                }
                if let (Some(want), Some(have)) = (q.direct_qlen, direct_qlen)
                    && want != have
                {
                    diffs.push(format!("direct_qlen {have} -> {want}"));
                }
            }
            if diffs.is_empty() {
                return Ok(Change::Unchanged);
            }
            return Err(HtbError::Mismatch {
                op: format!(
                    "ensure htb root {} on dev {} (netns {})",
                    q.handle,
                    link.name,
                    self.netns()
                ),
                reason: format!(
                    "the HTB root differs ({}) and HTB cannot change it in place; delete it first (tc qdisc del dev {} root)",
                    diffs.join(", "),
                    link.name
                ),
            });
        }
        let before = format!("{} {}", root.kind, root.header.handle);
        self.qdisc_replace(link, q)?;
        Ok(if root.header.handle == Handle::UNSPEC {
            Change::Created
        } else {
            Change::Replaced(before)
        })
    }

    /// Makes sure HTB class `class` exists with exactly its rate, ceil,
    /// burst, cburst, prio (and quantum, when given): adds it when missing,
    /// changes only when something differs.
    pub fn ensure_class(&mut self, link: &Link, class: &HtbClass) -> Result<Change, HtbError> {
        let have = match self.class_get(link, class.classid) {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => {
                self.class_add(link, class)?;
                return Ok(Change::Created);
            }
            Err(e) => return Err(e),
        };
        let op = || {
            format!(
                "ensure htb class {} on dev {} (netns {})",
                class.classid,
                link.name,
                self.netns()
            )
        };
        // The kernel reports a class directly under the qdisc as `root`.
        let same_parent = have.header.parent == class.parent
            || (have.header.parent == Handle::ROOT && class.parent == class.classid.qdisc());
        if !same_parent {
            return Err(HtbError::Mismatch {
                op: op(),
                reason: format!(
                    "it exists under parent {} (wanted {}); HTB cannot move a class",
                    have.header.parent, class.parent
                ),
            });
        }
        let Options::HtbClass(p) = have.options else {
            return Err(HtbError::Mismatch {
                op: op(),
                reason: format!("it exists as a {} class, not htb", have.kind),
            });
        };
        let want = class.params(self.psched());
        let ps = *self.psched();
        let mut diffs = Vec::new();
        if p.rate64 != want.rate64 {
            diffs.push(format!("rate {} -> {}", p.rate64, want.rate64));
        }
        if p.ceil64 != want.ceil64 {
            diffs.push(format!("ceil {} -> {}", p.ceil64, want.ceil64));
        }
        if p.buffer != want.buffer {
            diffs.push(format!(
                "burst {}b -> {}b",
                p.burst_bytes(&ps),
                class.effective_burst(&ps)
            ));
        }
        if p.cbuffer != want.cbuffer {
            diffs.push(format!(
                "cburst {}b -> {}b",
                p.cburst_bytes(&ps),
                class.effective_cburst(&ps)
            ));
        }
        if p.prio != want.prio {
            diffs.push(format!("prio {} -> {}", p.prio, want.prio));
        }
        if let Some(q) = class.quantum
            && p.quantum != q
        {
            diffs.push(format!("quantum {} -> {q}", p.quantum));
        }
        if diffs.is_empty() {
            return Ok(Change::Unchanged);
        }
        self.class_change(link, class)?;
        Ok(Change::Updated(diffs))
    }

    /// Makes sure the leaf qdisc under class `parent` is `leaf` with handle
    /// `handle` (kind and fifo limit compared), replacing what is there.
    pub fn ensure_leaf(
        &mut self,
        link: &Link,
        parent: Handle,
        handle: Handle,
        leaf: &Leaf,
    ) -> Result<Change, HtbError> {
        let existing = self
            .qdiscs(link)?
            .into_iter()
            .find(|q| q.header.parent == parent);
        if let Some(q) = &existing
            && q.kind == leaf.kind()
            && q.header.handle == handle
        {
            let same = match (leaf, &q.options) {
                (
                    Leaf::Pfifo { limit: Some(l) } | Leaf::Bfifo { limit: Some(l) },
                    Options::Fifo { limit },
                ) => l == limit,
                (Leaf::Pfifo { limit: Some(_) } | Leaf::Bfifo { limit: Some(_) }, _) => false,
                _ => true,
            };
            if same {
                return Ok(Change::Unchanged);
            }
        }
        match existing {
            Some(q) if q.header.handle != handle => {
                // A different handle cannot be replaced in place: delete, add.
                self.qdisc_del(link, parent, q.header.handle)?;
                self.leaf_add(link, parent, handle, leaf)?;
                Ok(Change::Replaced(format!("{} {}", q.kind, q.header.handle)))
            }
            Some(q) => {
                self.leaf_replace(link, parent, handle, leaf)?;
                Ok(Change::Replaced(format!("{} {}", q.kind, q.header.handle)))
            }
            None => {
                self.leaf_add(link, parent, handle, leaf)?;
                Ok(Change::Created)
            }
        }
    }
}
