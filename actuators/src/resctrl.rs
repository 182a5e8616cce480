//! [`CacheAllocator`] on `cat-rdt`'s [`cat_rdt::Resctrl`]: L3 capacity
//! bitmasks and MBA percent of resctrl groups, one domain at a time.
//! Under L3 CDP the same mask is written to `L3DATA` and `L3CODE` and read
//! from `L3DATA`. MBA is supported on the Intel percent scale only.

use cat_rdt::schemata::{SchemaLine, Schemata};
use cat_rdt::{MbScale, Resctrl, Resource, Value};

use crate::backend::{BackendError, CacheAllocator};

/// Errors of the resctrl adapter that `cat-rdt` does not report itself.
#[derive(Debug, thiserror::Error)]
pub enum ResctrlAdapterError {
    /// The group's schemata has no value for the domain.
    #[error("resctrl group {group} has no {resource} value for domain {domain}")]
    NoDomain {
        /// Group.
        group: String,
        /// Resource name.
        resource: String,
        /// Domain id.
        domain: u32,
    },
    /// No L3 allocation on this host.
    #[error("this resctrl mount has no L3 cache allocation")]
    NoL3,
    /// MBA on a scale other than percent.
    #[error(
        "memory bandwidth is on the {0:?} scale here; only the Intel percent scale is supported"
    )]
    Scale(Option<MbScale>),
}

/// resctrl through `cat-rdt`.
#[derive(Debug)]
pub struct ResctrlAllocator {
    rc: Resctrl,
}

impl ResctrlAllocator {
    /// An allocator on an opened resctrl mount.
    pub fn new(rc: Resctrl) -> ResctrlAllocator {
        ResctrlAllocator { rc }
    }

    /// The resctrl handle.
    pub fn resctrl(&self) -> &Resctrl {
        &self.rc
    }

    fn l3_resources(&self) -> Vec<Resource> {
        if self.rc.layout().l3_cdp() {
            vec![Resource::L3Data, Resource::L3Code]
        } else {
            vec![Resource::L3]
        }
    }

    fn percent_scale(&self) -> Result<(), ResctrlAdapterError> {
        match self.rc.layout().mb_scale {
            Some(MbScale::Percent) => Ok(()),
            other => Err(ResctrlAdapterError::Scale(other)),
        }
    }

    fn get(&self, group: &str, resource: &Resource, domain: u32) -> Result<u64, BackendError> {
        let s = self.rc.schemata(group)?;
        s.get(resource, domain).map(Value::raw).ok_or_else(|| {
            ResctrlAdapterError::NoDomain {
                group: group.into(),
                resource: resource.name().into(),
                domain,
            }
            .into()
        })
    }

    fn set(
        &self,
        group: &str,
        resources: &[Resource],
        domain: u32,
        value: Value,
    ) -> Result<(), BackendError> {
        let update = Schemata {
            lines: resources
                .iter()
                .map(|r| SchemaLine {
                    resource: r.clone(),
                    domains: vec![(domain, value)],
                })
                .collect(),
        };
        Ok(self.rc.update_schemata(group, &update)?)
    }
}

impl CacheAllocator for ResctrlAllocator {
    fn l3_mask(&mut self, group: &str, cache_id: u32) -> Result<u64, BackendError> {
        let r = self.l3_resources().remove(0);
        self.get(group, &r, cache_id)
    }

    fn set_l3_mask(&mut self, group: &str, cache_id: u32, mask: u64) -> Result<(), BackendError> {
        let rs = self.l3_resources();
        self.set(group, &rs, cache_id, Value::Cbm(mask))
    }

    fn l3_geometry(&mut self, _cache_id: u32) -> Result<(u64, u32), BackendError> {
        let r = self.l3_resources().remove(0);
        let info = self
            .rc
            .layout()
            .caches
            .get(&r)
            .ok_or(ResctrlAdapterError::NoL3)?;
        Ok((info.cbm_mask, info.min_cbm_bits))
    }

    fn mb_percent(&mut self, group: &str, domain: u32) -> Result<u32, BackendError> {
        self.percent_scale()?;
        let v = self.get(group, &Resource::Mb, domain)?;
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    }

    fn set_mb_percent(
        &mut self,
        group: &str,
        domain: u32,
        percent: u32,
    ) -> Result<(), BackendError> {
        self.percent_scale()?;
        let v = self.rc.mb_value_for_percent(percent)?;
        self.set(group, &[Resource::Mb], domain, Value::Bw(v))
    }

    fn normalize_mb_percent(&mut self, percent: u32) -> Result<u32, BackendError> {
        self.percent_scale()?;
        let v = self.rc.mb_value_for_percent(percent)?;
        Ok(u32::try_from(v).unwrap_or(100))
    }
}
