//! Ground-truth fault lists: Nezha's `fault_list.json` into [`Culprit`]s.
//!
//! Nezha groups injections by hour: `{"03": [{"inject_time", "inject_timestamp",
//! "inject_pod", "inject_type"}, ...], ...}`. The service is the pod name without its
//! replica-set and pod hashes; the type maps to a resource with
//! [`Resource::from_nezha`]. The list gives no end time, so each fault lasts the
//! duration the caller gives (Nezha's chaos experiments run for about a minute).

use crate::import::service_from_pod;
use crate::labels::{Culprit, Resource};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors reading a fault list.
#[derive(Debug, thiserror::Error)]
pub enum FaultListError {
    /// The file could not be read.
    #[error("failed to read fault list {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a Nezha fault list.
    #[error("{path} is not a nezha fault list: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct Injection {
    inject_timestamp: serde_json::Value,
    inject_pod: String,
    inject_type: String,
}

/// One injection as listed, with the fault type kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The culprit it implies.
    pub culprit: Culprit,
    /// Nezha's `inject_type`, e.g. `cpu_contention`.
    pub kind: String,
    /// The pod as listed.
    pub pod: String,
}

/// Reads a Nezha `fault_list.json`; each fault lasts `duration_ns`.
pub fn read_nezha_faults(path: &Path, duration_ns: u64) -> Result<Vec<Fault>, FaultListError> {
    let text = std::fs::read_to_string(path).map_err(|source| FaultListError::Io {
        path: path.into(),
        source,
    })?;
    parse_nezha_faults(&text, duration_ns).map_err(|message| FaultListError::Format {
        path: path.into(),
        message,
    })
}

/// Parses the text of a Nezha fault list (see [`read_nezha_faults`]).
pub fn parse_nezha_faults(text: &str, duration_ns: u64) -> Result<Vec<Fault>, String> {
    let hours: BTreeMap<String, Vec<Injection>> =
        serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for inj in hours.into_values().flatten() {
        let secs = match &inj.inject_timestamp {
            serde_json::Value::String(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("inject_timestamp {s:?}: {e}"))?,
            serde_json::Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| format!("inject_timestamp {n} is not a whole number"))?,
            v => return Err(format!("inject_timestamp {v} is not a number")),
        };
        let resource = Resource::from_nezha(&inj.inject_type)
            .ok_or_else(|| format!("unknown inject_type {:?}", inj.inject_type))?;
        let start_ns = secs
            .checked_mul(1_000_000_000)
            .ok_or_else(|| format!("inject_timestamp {secs} out of range"))?;
        out.push(Fault {
            culprit: Culprit {
                service: service_from_pod(&inj.inject_pod).to_string(),
                resource,
                start_ns,
                end_ns: start_ns.saturating_add(duration_ns),
            },
            kind: inj.inject_type,
            pod: inj.inject_pod,
        });
    }
    out.sort_by_key(|f| f.culprit.start_ns);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hours_and_strips_pod_hashes() {
        let text = r#"{"04": [{"inject_time": "x", "inject_timestamp": "1661140927",
            "inject_pod": "frontend-579b9bff58-t2dbm", "inject_type": "network_delay"}],
            "03": [{"inject_time": "x", "inject_timestamp": 1661140434,
            "inject_pod": "ts-gateway-service-6f6cfc45b-h5m2n", "inject_type": "cpu_contention"}]}"#;
        let f = parse_nezha_faults(text, 60_000_000_000).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].culprit.service, "ts-gateway-service");
        assert_eq!(f[0].culprit.resource, Resource::Cpu);
        assert_eq!(f[1].culprit.service, "frontend");
        assert_eq!(f[1].culprit.end_ns - f[1].culprit.start_ns, 60_000_000_000);
        assert!(parse_nezha_faults(r#"{"03": [{"inject_timestamp": "1", "inject_pod": "a-b-c", "inject_type": "meteor"}]}"#, 1).is_err());
        assert!(parse_nezha_faults("[", 1).is_err());
    }
}
