//! Capability checks at start: CAP_SYS_ADMIN for cgroups and resctrl,
//! CAP_NET_ADMIN for tc. The error names the missing capability and what
//! needs it, so an operator knows what to grant.

use caps::{CapSet, Capability};

/// Errors from capability checks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapsError {
    /// A needed capability is not in the effective set.
    #[error(
        "missing capability {cap} (needed for {purpose}); run as root or grant it, e.g. `setcap {lower}+ep`"
    )]
    Missing {
        /// The capability, e.g. `CAP_NET_ADMIN`.
        cap: String,
        /// What needs it.
        purpose: &'static str,
        /// Lowercase name for the setcap hint.
        lower: String,
    },
    /// The capability sets could not be read.
    #[error("failed to read the effective capability set: {0}")]
    Read(String),
}

/// What the actuator will touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// cgroup files.
    Cgroups,
    /// resctrl (CAT/MBA).
    Resctrl,
    /// tc/HTB over netlink.
    Tc,
}

impl Need {
    /// The capability this needs.
    pub fn capability(self) -> Capability {
        match self {
            Need::Cgroups | Need::Resctrl => Capability::CAP_SYS_ADMIN,
            Need::Tc => Capability::CAP_NET_ADMIN,
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            Need::Cgroups => "cgroup resizing",
            Need::Resctrl => "cache and memory-bandwidth allocation through resctrl",
            Need::Tc => "network rate shaping with tc HTB",
        }
    }
}

/// Checks `needs` against a capability predicate (pure; see [`check_effective`]).
pub fn check_with(needs: &[Need], has: impl Fn(Capability) -> bool) -> Result<(), CapsError> {
    for n in needs {
        let cap = n.capability();
        if !has(cap) {
            let name = cap.to_string();
            return Err(CapsError::Missing {
                lower: name.to_ascii_lowercase(),
                cap: name,
                purpose: n.purpose(),
            });
        }
    }
    Ok(())
}

/// Checks `needs` against this process's effective capability set.
pub fn check_effective(needs: &[Need]) -> Result<(), CapsError> {
    let eff = caps::read(None, CapSet::Effective).map_err(|e| CapsError::Read(e.to_string()))?;
    check_with(needs, |c| eff.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_capability() {
        let only_admin = |c| c == Capability::CAP_SYS_ADMIN;
        assert_eq!(
            check_with(&[Need::Cgroups, Need::Resctrl], only_admin),
            Ok(())
        );
        let e = check_with(&[Need::Cgroups, Need::Tc], only_admin).expect_err("no net admin");
        let msg = e.to_string();
        assert!(
            msg.starts_with("missing capability CAP_NET_ADMIN (needed for network rate shaping"),
            "{msg}"
        );
        assert!(msg.contains("setcap cap_net_admin+ep"), "{msg}");
        let e = check_with(&[Need::Cgroups], |_| false).expect_err("none");
        assert!(e.to_string().contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn this_process() {
        // Whatever we are, the check agrees with caps::has_cap.
        let has =
            caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN).expect("read caps");
        assert_eq!(check_effective(&[Need::Tc]).is_ok(), has);
    }
}
