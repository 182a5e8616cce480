//! The resctrl `schemata` file: parse and print, as pure functions.
//!
//! A schemata file holds one line per resource, `NAME:ID=VALUE;ID=VALUE`,
//! where the value is a hex cache bit mask for cache resources (`L3`, `L2`,
//! and their CDP halves `L3DATA`/`L3CODE`, `L2DATA`/`L2CODE`) and a decimal
//! bandwidth for `MB` (percent, AMD units, or MBps with `mba_MBps`) and
//! `SMBA`. The kernel pads resource names to a common width and values to a
//! fixed width (`    MB:0=100;1= 50`); the parser accepts both padded and
//! unpadded text, and [`Schemata::to_write_string`] prints the compact form
//! that the kernel accepts on write.

use std::fmt;

/// A resctrl resource that appears in `schemata`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Resource {
    /// L3 cache allocation (CAT).
    L3,
    /// L3 data half under CDP (`-o cdp`).
    L3Data,
    /// L3 code half under CDP (`-o cdp`).
    L3Code,
    /// L2 cache allocation.
    L2,
    /// L2 data half under L2 CDP (`-o cdpl2`).
    L2Data,
    /// L2 code half under L2 CDP (`-o cdpl2`).
    L2Code,
    /// Memory bandwidth allocation (MBA).
    Mb,
    /// AMD slow-memory bandwidth allocation.
    Smba,
    /// A resource this crate does not know; its values are kept as text.
    Other(String),
}

impl Resource {
    /// Every resource this crate knows, in the order the kernel prints them.
    pub const KNOWN: [Resource; 8] = [
        Resource::L3,
        Resource::L3Data,
        Resource::L3Code,
        Resource::L2,
        Resource::L2Data,
        Resource::L2Code,
        Resource::Mb,
        Resource::Smba,
    ];

    /// The name as written in `schemata` and under `info/`.
    pub fn name(&self) -> &str {
        match self {
            Resource::L3 => "L3",
            Resource::L3Data => "L3DATA",
            Resource::L3Code => "L3CODE",
            Resource::L2 => "L2",
            Resource::L2Data => "L2DATA",
            Resource::L2Code => "L2CODE",
            Resource::Mb => "MB",
            Resource::Smba => "SMBA",
            Resource::Other(n) => n,
        }
    }

    /// Parse a resource name (exact, upper case as the kernel writes it).
    pub fn from_name(name: &str) -> Resource {
        Resource::KNOWN
            .iter()
            .find(|r| r.name() == name)
            .cloned()
            .unwrap_or_else(|| Resource::Other(name.to_string()))
    }

    /// Whether values are cache bit masks (hex).
    pub fn is_cache(&self) -> bool {
        matches!(
            self,
            Resource::L3
                | Resource::L3Data
                | Resource::L3Code
                | Resource::L2
                | Resource::L2Data
                | Resource::L2Code
        )
    }

    /// Whether values are bandwidths (decimal).
    pub fn is_bandwidth(&self) -> bool {
        matches!(self, Resource::Mb | Resource::Smba)
    }

    /// Whether this is one half of a CDP pair.
    pub fn is_cdp(&self) -> bool {
        matches!(
            self,
            Resource::L3Data | Resource::L3Code | Resource::L2Data | Resource::L2Code
        )
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One domain's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Value {
    /// A cache bit mask.
    Cbm(u64),
    /// A bandwidth (percent, vendor units, or MBps).
    Bw(u64),
}

impl Value {
    /// The number inside.
    pub fn raw(self) -> u64 {
        match self {
            Value::Cbm(v) | Value::Bw(v) => v,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Cbm(m) => write!(f, "{m:x}"),
            Value::Bw(b) => write!(f, "{b}"),
        }
    }
}

/// One line of a schemata file: a resource and its per-domain values, in
/// the order written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaLine {
    /// The resource.
    pub resource: Resource,
    /// `(domain id, value)` pairs.
    pub domains: Vec<(u32, Value)>,
}

impl SchemaLine {
    /// The value of domain `id`, if listed.
    pub fn get(&self, id: u32) -> Option<Value> {
        self.domains.iter().find(|(d, _)| *d == id).map(|(_, v)| *v)
    }
}

/// A parsed schemata file or update. As JSON it is an object of resources,
/// each an object of domain ids: `{"L3": {"0": "7f0"}, "MB": {"0": 50}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schemata {
    /// The lines, in order.
    pub lines: Vec<SchemaLine>,
}

/// Why schemata text could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemataError {
    /// A line has no `:` between the resource name and its domains.
    #[error("schemata line {line:?} has no ':' after the resource name")]
    MissingColon {
        /// The line.
        line: String,
    },
    /// A line names a resource but lists no domains.
    #[error("schemata line {line:?} lists no domain")]
    MissingValue {
        /// The line.
        line: String,
    },
    /// A domain item is not `ID=VALUE` with a decimal id.
    #[error("schemata item {item:?} of {resource} is not ID=VALUE with a decimal domain id")]
    BadDomain {
        /// The resource.
        resource: String,
        /// The item.
        item: String,
    },
    /// A cache mask is not hex.
    #[error("{resource} domain {domain}: mask {value:?} is not hexadecimal")]
    BadMask {
        /// The resource.
        resource: String,
        /// The domain id.
        domain: u32,
        /// The value text.
        value: String,
    },
    /// A bandwidth is not decimal.
    #[error("{resource} domain {domain}: bandwidth {value:?} is not a decimal number")]
    BadBandwidth {
        /// The resource.
        resource: String,
        /// The domain id.
        domain: u32,
        /// The value text.
        value: String,
    },
    /// A domain is listed twice on one line.
    #[error("{resource} lists domain {domain} twice")]
    DuplicateDomain {
        /// The resource.
        resource: String,
        /// The domain id.
        domain: u32,
    },
    /// A resource this crate does not know.
    #[error("unknown resource {0:?} (known: L3, L3DATA, L3CODE, L2, L2DATA, L2CODE, MB, SMBA)")]
    UnknownResource(String),
}

/// Parse a cache mask the way the kernel's `kstrtoul(.., 16, ..)` does:
/// hex digits with an optional `0x` prefix.
pub fn parse_hex(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

/// Parse the domain list of one resource, `0=7ff;1=0x0f0` or `0=50;1=100`.
pub fn parse_domains(resource: &Resource, text: &str) -> Result<Vec<(u32, Value)>, SchemataError> {
    let mut out: Vec<(u32, Value)> = Vec::new();
    for item in text.split(';') {
        if item.trim().is_empty() {
            continue;
        }
        let bad = || SchemataError::BadDomain {
            resource: resource.to_string(),
            item: item.trim().to_string(),
        };
        let (id, val) = item.split_once('=').ok_or_else(bad)?;
        let id: u32 = id.trim().parse().map_err(|_| bad())?;
        let val = val.trim();
        let value = if resource.is_bandwidth() {
            Value::Bw(val.parse().map_err(|_| SchemataError::BadBandwidth {
                resource: resource.to_string(),
                domain: id,
                value: val.to_string(),
            })?)
        } else if resource.is_cache() {
            Value::Cbm(parse_hex(val).ok_or_else(|| SchemataError::BadMask {
                resource: resource.to_string(),
                domain: id,
                value: val.to_string(),
            })?)
        } else {
            return Err(SchemataError::UnknownResource(resource.to_string()));
        };
        if out.iter().any(|(d, _)| *d == id) {
            return Err(SchemataError::DuplicateDomain {
                resource: resource.to_string(),
                domain: id,
            });
        }
        out.push((id, value));
    }
    Ok(out)
}

impl Schemata {
    /// Parse schemata text as read from a group's `schemata` file. Lines of
    /// resources this crate does not know are skipped (a newer kernel may
    /// print more resources than this crate handles).
    pub fn parse(text: &str) -> Result<Schemata, SchemataError> {
        let mut lines = Vec::new();
        for raw in text.lines() {
            if raw.trim().is_empty() {
                continue;
            }
            let (name, rest) = raw
                .split_once(':')
                .ok_or_else(|| SchemataError::MissingColon {
                    line: raw.to_string(),
                })?;
            let resource = Resource::from_name(name.trim());
            if let Resource::Other(_) = resource {
                continue;
            }
            if rest.trim().is_empty() {
                return Err(SchemataError::MissingValue {
                    line: raw.to_string(),
                });
            }
            let domains = parse_domains(&resource, rest)?;
            lines.push(SchemaLine { resource, domains });
        }
        Ok(Schemata { lines })
    }

    /// The line of `resource`, if present.
    pub fn line(&self, resource: &Resource) -> Option<&SchemaLine> {
        self.lines.iter().find(|l| &l.resource == resource)
    }

    /// The value of `resource` on domain `id`, if present.
    pub fn get(&self, resource: &Resource, id: u32) -> Option<Value> {
        self.line(resource).and_then(|l| l.get(id))
    }

    /// Set one domain's value, adding the line or the domain if missing.
    pub fn set(&mut self, resource: &Resource, id: u32, value: Value) {
        match self.lines.iter_mut().find(|l| &l.resource == resource) {
            Some(line) => match line.domains.iter_mut().find(|(d, _)| *d == id) {
                Some(slot) => slot.1 = value,
                None => line.domains.push((id, value)),
            },
            None => self.lines.push(SchemaLine {
                resource: resource.clone(),
                domains: vec![(id, value)],
            }),
        }
    }

    /// Overlay `update` on `self`: the listed domains take the new values,
    /// all others keep theirs.
    pub fn merged(&self, update: &Schemata) -> Schemata {
        let mut out = self.clone();
        for line in &update.lines {
            for &(id, v) in &line.domains {
                out.set(&line.resource, id, v);
            }
        }
        out
    }

    /// Print the compact form that a write to `schemata` takes, one line per
    /// resource, each ending in a newline: `L3:0=7ff;1=7ff\n`.
    pub fn to_write_string(&self) -> String {
        let mut s = String::new();
        for line in &self.lines {
            s.push_str(&format_line(line));
            s.push('\n');
        }
        s
    }
}

/// Print one line in compact form without the newline: `L3:0=7ff;1=7ff`.
pub fn format_line(line: &SchemaLine) -> String {
    let items: Vec<String> = line
        .domains
        .iter()
        .map(|(id, v)| format!("{id}={v}"))
        .collect();
    format!("{}:{}", line.resource, items.join(";"))
}

impl serde::Serialize for Schemata {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(Some(self.lines.len()))?;
        for line in &self.lines {
            let doms: serde_json::Map<String, serde_json::Value> = line
                .domains
                .iter()
                .map(|(d, v)| {
                    let j = match v {
                        Value::Cbm(c) => serde_json::Value::String(format!("{c:x}")),
                        Value::Bw(b) => serde_json::Value::from(*b),
                    };
                    (d.to_string(), j)
                })
                .collect();
            m.serialize_entry(line.resource.name(), &doms)?;
        }
        m.end()
    }
}

impl fmt::Display for Schemata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_write_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root schemata of a two-socket Skylake-SP as the kernel prints it
    /// (`cat /sys/fs/resctrl/schemata`), padded names and MB values.
    const SKX: &str = "    L3:0=7ff;1=7ff\n    MB:0=100;1= 50\n";
    /// CDP layout as printed with `mount -t resctrl -o cdp`.
    const CDP: &str = "L3DATA:0=fffff;1=fffff\nL3CODE:0=fffff;1=fffff\n    MB:0=100;1=100\n";

    #[test]
    fn golden_skx() {
        let s = Schemata::parse(SKX).expect("valid");
        assert_eq!(s.get(&Resource::L3, 1), Some(Value::Cbm(0x7ff)));
        assert_eq!(s.get(&Resource::Mb, 1), Some(Value::Bw(50)));
        assert_eq!(s.to_write_string(), "L3:0=7ff;1=7ff\nMB:0=100;1=50\n");
    }

    #[test]
    fn golden_cdp() {
        let s = Schemata::parse(CDP).expect("valid");
        assert_eq!(s.lines.len(), 3);
        assert_eq!(s.lines[1].resource, Resource::L3Code);
        assert_eq!(s.get(&Resource::L3Data, 0), Some(Value::Cbm(0xfffff)));
        assert_eq!(
            Schemata::parse(&s.to_write_string()).expect("own output"),
            s
        );
    }

    #[test]
    fn accepts_0x_and_skips_unknown() {
        let s = Schemata::parse("L3:0=0xff0\nXYZ:0=1\n").expect("valid");
        assert_eq!(s.lines.len(), 1);
        assert_eq!(s.get(&Resource::L3, 0), Some(Value::Cbm(0xff0)));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            Schemata::parse("L3 0=ff"),
            Err(SchemataError::MissingColon { .. })
        ));
        assert!(matches!(
            Schemata::parse("L3:"),
            Err(SchemataError::MissingValue { .. })
        ));
        assert!(matches!(
            Schemata::parse("L3:x=ff"),
            Err(SchemataError::BadDomain { .. })
        ));
        assert!(matches!(
            Schemata::parse("L3:0=fg"),
            Err(SchemataError::BadMask { .. })
        ));
        assert!(matches!(
            Schemata::parse("MB:0=5a"),
            Err(SchemataError::BadBandwidth { .. })
        ));
        assert!(matches!(
            Schemata::parse("L3:0=f;0=f"),
            Err(SchemataError::DuplicateDomain { domain: 0, .. })
        ));
    }

    #[test]
    fn merge_keeps_unlisted_domains() {
        let base = Schemata::parse(SKX).expect("valid");
        let upd = Schemata::parse("L3:1=0f0").expect("valid");
        let m = base.merged(&upd);
        assert_eq!(m.to_write_string(), "L3:0=7ff;1=f0\nMB:0=100;1=50\n");
    }
}
