//! CPU profiles for the resctrl emulator: what RDT a machine offers, as a
//! TOML file, and the built-in profiles of real CPUs.
//!
//! ```toml
//! name = "my-cpu"
//! description = "two sockets, 11-way L3"
//! cpus = 8                 # online CPUs 0..cpus
//! [l3]                     # also [l2], same keys
//! cbm_mask = "7ff"
//! num_closids = 16
//! min_cbm_bits = 1
//! shareable_bits = "600"
//! sparse_masks = false
//! cdp = false              # whether `-o cdp` may be asked for
//! domains = [0, 1]
//! cache_bytes = 28835840
//! [mb]
//! num_closids = 8
//! min_bandwidth = 10
//! bandwidth_gran = 10
//! delay_linear = true
//! max = 100                # 100 (percent) on Intel, 2048 (1/8 GB/s) on AMD
//! thread_throttle_mode = "max"   # omit on AMD
//! domains = [0, 1]
//! [mon]
//! num_rmids = 176
//! features = ["llc_occupancy", "mbm_total_bytes", "mbm_local_bytes"]
//! ```

use std::path::Path;

use serde::Deserialize;

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile file could not be read.
    #[error("failed to read profile {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is not a valid profile.
    #[error("invalid profile {name}: {message}")]
    Invalid {
        /// The file or built-in name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Neither a built-in name nor a file.
    #[error(
        "unknown profile {0:?} (built-in: skylake-sp, icelake-sp, sapphire-rapids, epyc-milan; or a path to a .toml file)"
    )]
    Unknown(String),
}

/// A cache resource of a profile.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CacheProfile {
    /// All ways, hex.
    pub cbm_mask: String,
    /// CLOSIDs (halved under CDP).
    pub num_closids: u32,
    /// Fewest ways in a mask.
    pub min_cbm_bits: u32,
    /// Ways shared with hardware, hex.
    #[serde(default = "zero_hex")]
    pub shareable_bits: String,
    /// Whether non-contiguous masks are accepted.
    #[serde(default)]
    pub sparse_masks: bool,
    /// Whether code/data prioritisation may be mounted.
    #[serde(default)]
    pub cdp: bool,
    /// Cache domain ids.
    pub domains: Vec<u32>,
    /// Size of one domain's cache in bytes.
    pub cache_bytes: u64,
}

fn zero_hex() -> String {
    "0".into()
}

impl CacheProfile {
    /// `cbm_mask` as a number.
    pub fn cbm_mask(&self) -> u64 {
        crate::schemata::parse_hex(&self.cbm_mask).unwrap_or(0)
    }

    /// `shareable_bits` as a number.
    pub fn shareable_bits(&self) -> u64 {
        crate::schemata::parse_hex(&self.shareable_bits).unwrap_or(0)
    }
}

/// Memory bandwidth allocation of a profile.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MbProfile {
    /// CLOSIDs.
    pub num_closids: u32,
    /// Smallest value.
    pub min_bandwidth: u64,
    /// Granularity.
    pub bandwidth_gran: u64,
    /// Linear delay scale.
    #[serde(default = "yes")]
    pub delay_linear: bool,
    /// Largest value (the default of a new group).
    pub max: u64,
    /// `thread_throttle_mode`, absent on AMD.
    #[serde(default)]
    pub thread_throttle_mode: Option<String>,
    /// MBA domain ids.
    pub domains: Vec<u32>,
}

fn yes() -> bool {
    true
}

/// Monitoring of a profile.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MonProfile {
    /// RMIDs.
    pub num_rmids: u32,
    /// Events.
    pub features: Vec<String>,
}

/// A machine's RDT, as the emulator presents it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name.
    pub name: String,
    /// One line about the machine.
    #[serde(default)]
    pub description: String,
    /// Online CPUs, numbered from 0.
    pub cpus: u32,
    /// L3 allocation.
    #[serde(default)]
    pub l3: Option<CacheProfile>,
    /// L2 allocation.
    #[serde(default)]
    pub l2: Option<CacheProfile>,
    /// MBA.
    #[serde(default)]
    pub mb: Option<MbProfile>,
    /// L3 monitoring.
    #[serde(default)]
    pub mon: Option<MonProfile>,
}

/// 2-socket Xeon Scalable (Skylake-SP, e.g. Gold 6148): 11-way L3, 16
/// CLOSIDs, 2 DDIO ways in `shareable_bits`, MBA with 8 CLOSIDs in steps of 10.
pub const SKYLAKE_SP: &str = r#"
name = "skylake-sp"
description = "2-socket Xeon Gold 6148 (Skylake-SP): 11-way 27.5 MB L3, MBA 10..100 step 10"
cpus = 40
[l3]
cbm_mask = "7ff"
num_closids = 16
min_cbm_bits = 1
shareable_bits = "600"
domains = [0, 1]
cache_bytes = 28835840
[mb]
num_closids = 8
min_bandwidth = 10
bandwidth_gran = 10
delay_linear = true
max = 100
thread_throttle_mode = "max"
domains = [0, 1]
[mon]
num_rmids = 176
features = ["llc_occupancy", "mbm_total_bytes", "mbm_local_bytes"]
"#;

/// 2-socket Xeon Scalable 3rd gen (Ice Lake-SP): 12-way L3 with CDP.
pub const ICELAKE_SP: &str = r#"
name = "icelake-sp"
description = "2-socket Xeon Platinum 8380 (Ice Lake-SP): 12-way 60 MB L3 with CDP, per-thread MBA"
cpus = 64
[l3]
cbm_mask = "fff"
num_closids = 16
min_cbm_bits = 1
shareable_bits = "0"
cdp = true
domains = [0, 1]
cache_bytes = 62914560
[mb]
num_closids = 8
min_bandwidth = 10
bandwidth_gran = 10
delay_linear = true
max = 100
thread_throttle_mode = "per-thread"
domains = [0, 1]
[mon]
num_rmids = 256
features = ["llc_occupancy", "mbm_total_bytes", "mbm_local_bytes"]
"#;

/// 2-socket Xeon Scalable 4th gen (Sapphire Rapids): 15-way L3.
pub const SAPPHIRE_RAPIDS: &str = r#"
name = "sapphire-rapids"
description = "2-socket Xeon Platinum 8480+ (Sapphire Rapids): 15-way 105 MB L3, per-thread MBA"
cpus = 112
[l3]
cbm_mask = "7fff"
num_closids = 16
min_cbm_bits = 1
shareable_bits = "0"
cdp = true
domains = [0, 1]
cache_bytes = 110100480
[mb]
num_closids = 16
min_bandwidth = 10
bandwidth_gran = 10
delay_linear = true
max = 100
thread_throttle_mode = "per-thread"
domains = [0, 1]
[mon]
num_rmids = 256
features = ["llc_occupancy", "mbm_total_bytes", "mbm_local_bytes"]
"#;

/// 1-socket AMD EPYC 7763 (Milan): one 16-way L3 domain per CCD, masks
/// may be empty or sparse, MBA in 1/8 GB/s units up to 2048.
pub const EPYC_MILAN: &str = r#"
name = "epyc-milan"
description = "AMD EPYC 7763 (Milan): 8 CCDs, 16-way 32 MB L3 each, MBA in 1/8 GB/s units"
cpus = 128
[l3]
cbm_mask = "ffff"
num_closids = 16
min_cbm_bits = 0
shareable_bits = "0"
sparse_masks = true
domains = [0, 1, 2, 3, 4, 5, 6, 7]
cache_bytes = 33554432
[mb]
num_closids = 16
min_bandwidth = 0
bandwidth_gran = 1
delay_linear = false
max = 2048
domains = [0, 1, 2, 3, 4, 5, 6, 7]
[mon]
num_rmids = 256
features = ["llc_occupancy", "mbm_total_bytes", "mbm_local_bytes"]
"#;

/// Names of the built-in profiles.
pub const BUILTIN: [(&str, &str); 4] = [
    ("skylake-sp", SKYLAKE_SP),
    ("icelake-sp", ICELAKE_SP),
    ("sapphire-rapids", SAPPHIRE_RAPIDS),
    ("epyc-milan", EPYC_MILAN),
];

impl Profile {
    /// Parse a profile from TOML text; `name` is used in errors.
    pub fn from_toml(name: &str, text: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text).map_err(|e| ProfileError::Invalid {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        p.check(name)?;
        Ok(p)
    }

    /// A built-in profile by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Profile::from_toml(name_or_path, text);
        }
        let p = Path::new(name_or_path);
        if p.is_file() {
            let text = std::fs::read_to_string(p).map_err(|e| ProfileError::Read {
                path: p.to_path_buf(),
                source: e,
            })?;
            return Profile::from_toml(name_or_path, &text);
        }
        Err(ProfileError::Unknown(name_or_path.to_string()))
    }

    fn check(&self, name: &str) -> Result<(), ProfileError> {
        let bad = |m: String| {
            Err(ProfileError::Invalid {
                name: name.to_string(),
                message: m,
            })
        };
        if self.cpus == 0 || self.cpus > 4096 {
            return bad(format!("cpus must be in 1..=4096, not {}", self.cpus));
        }
        for (what, c) in [("l3", &self.l3), ("l2", &self.l2)] {
            let Some(c) = c else { continue };
            let Some(m) = crate::schemata::parse_hex(&c.cbm_mask) else {
                return bad(format!("{what}.cbm_mask {:?} is not hex", c.cbm_mask));
            };
            if m == 0 || !crate::cbm::is_contiguous(m) || m & 1 == 0 || m >> 32 != 0 {
                return bad(format!(
                    "{what}.cbm_mask {:#x} must be contiguous ones from bit 0, at most 32 bits",
                    m
                ));
            }
            if crate::schemata::parse_hex(&c.shareable_bits).is_none_or(|s| s & !m != 0) {
                return bad(format!(
                    "{what}.shareable_bits {:?} is not hex inside cbm_mask",
                    c.shareable_bits
                ));
            }
            if c.num_closids == 0 || c.domains.is_empty() || c.min_cbm_bits > crate::cbm::ways(m) {
                return bad(format!(
                    "{what} needs num_closids > 0, a domain, and min_cbm_bits <= ways"
                ));
            }
        }
        if let Some(mb) = &self.mb
            && (mb.num_closids == 0
                || mb.domains.is_empty()
                || mb.bandwidth_gran == 0
                || mb.max < mb.min_bandwidth)
        {
            return bad(
                "mb needs num_closids > 0, a domain, bandwidth_gran > 0, max >= min_bandwidth"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (n, _) in BUILTIN {
            let p = Profile::load(n).expect("builtin");
            assert_eq!(p.name, n);
        }
        let skx = Profile::load("skylake-sp").expect("builtin");
        let l3 = skx.l3.expect("l3");
        assert_eq!(l3.cbm_mask(), 0x7ff);
        assert_eq!(l3.shareable_bits(), 0x600);
    }

    #[test]
    fn bad_profiles() {
        assert!(matches!(
            Profile::load("nope"),
            Err(ProfileError::Unknown(_))
        ));
        let e = Profile::from_toml("x", "name='x'\ncpus=4\n[l3]\ncbm_mask='f0f'\nnum_closids=4\nmin_cbm_bits=1\ndomains=[0]\ncache_bytes=1\n")
            .expect_err("sparse cbm_mask");
        assert!(e.to_string().contains("cbm_mask"), "{e}");
        assert!(Profile::from_toml("x", "name='x'\ncpus=4\nbogus=1\n").is_err());
    }
}
