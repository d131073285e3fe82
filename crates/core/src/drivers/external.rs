//! Drivers served by other conductors: `[drivers] external_drivers`.
//!
//! An operator who runs a Python driver (PyPI `magnum-cluster-api`, say)
//! inside upstream's `magnum-conductor` declares it here, each entry
//! `name:server_type:os_distro:coe` (several entries of one name add kinds
//! to it). The API then validates and selects such a driver like one of
//! its own, and hands its clusters' operations to the conductors on
//! `[drivers] external_topic` in upstream's wire format; our conductors
//! never claim, sync or delete those clusters ([`Driver::external`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use super::{ClusterKind, Driver};
use crate::config::{opts, Config};

/// A driver another conductor runs: it knows its name and kinds, and
/// builds nothing here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalDriver {
    name: &'static str,
    provides: &'static [ClusterKind],
}

impl Driver for ExternalDriver {
    fn name(&self) -> &'static str {
        self.name
    }
    fn provides(&self) -> &'static [ClusterKind] {
        self.provides
    }
    /// Only by name, by its exact kind, or as `[drivers] default_driver`:
    /// a template that names no OS keeps going to the drivers it went to
    /// before the external ones were declared.
    fn default_candidate(&self) -> bool {
        false
    }
    fn external(&self) -> bool {
        true
    }
    /// Its own conductors decide how many masters they build.
    fn validate_master_resize(&self, _count: i64) -> Result<(), crate::MagnumError> {
        Ok(())
    }
}

/// A malformed `[drivers] external_drivers` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "[drivers] external_drivers entry {entry:?} is not name:server_type:os_distro:coe \
     (four non-empty parts)"
)]
pub struct EntryError {
    pub entry: String,
}

/// The external drivers `entries` declare, in first-mention order.
pub fn parse(entries: &[String]) -> Result<Vec<ExternalDriver>, EntryError> {
    let mut declared: Vec<(String, Vec<ClusterKind>)> = Vec::new();
    for entry in entries {
        let malformed = || EntryError {
            entry: entry.clone(),
        };
        let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
        let [name, server_type, os, coe] = parts[..] else {
            return Err(malformed());
        };
        if parts.contains(&"") {
            return Err(malformed());
        }
        let kind = ClusterKind {
            server_type: intern(server_type),
            os: intern(os),
            coe: intern(coe),
        };
        match declared.iter_mut().find(|(n, _)| n == name) {
            Some((_, kinds)) if kinds.contains(&kind) => {}
            Some((_, kinds)) => kinds.push(kind),
            None => declared.push((name.to_string(), vec![kind])),
        }
    }
    Ok(declared
        .into_iter()
        .map(|(name, kinds)| ExternalDriver {
            name: intern(&name),
            provides: intern_kinds(kinds),
        })
        .collect())
}

/// The external drivers of `conf` (a malformed entry is an error, which
/// start-up reports).
pub fn from_conf(conf: &Config) -> Result<Vec<ExternalDriver>, EntryError> {
    parse(&conf.get(opts::drivers::EXTERNAL_DRIVERS))
}

/// The topic the external drivers' conductors serve.
pub fn topic(conf: &Config) -> String {
    conf.get(opts::drivers::EXTERNAL_TOPIC)
        .unwrap_or_else(|| "magnum-conductor".into())
}

/// [`from_conf`] as registry entries; malformed entries are left out (and
/// logged): the process refused to start with them, so only a registry
/// built outside start-up (a test's) meets one.
pub(super) fn registered(conf: &Config) -> Vec<Arc<dyn Driver>> {
    match from_conf(conf) {
        Ok(ds) => ds
            .into_iter()
            .map(|d| Arc::new(d) as Arc<dyn Driver>)
            .collect(),
        Err(e) => {
            tracing::error!("{e}; no external driver is in force");
            Vec::new()
        }
    }
}

// Driver names and kinds are `&'static str` (the shipped ones are
// constants); the configured ones are interned: each distinct text is
// leaked once per process, however many registries are built.
fn intern(s: &str) -> &'static str {
    static POOL: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();
    let mut pool = POOL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = pool.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    pool.insert(leaked);
    leaked
}

fn intern_kinds(kinds: Vec<ClusterKind>) -> &'static [ClusterKind] {
    static POOL: OnceLock<Mutex<Vec<&'static [ClusterKind]>>> = OnceLock::new();
    let mut pool = POOL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = pool.iter().find(|k| **k == kinds.as_slice()) {
        return found;
    }
    let leaked: &'static [ClusterKind] = Box::leak(kinds.into_boxed_slice());
    pool.push(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(s: &[&str]) -> Vec<String> {
        s.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn entries_declare_drivers_with_their_kinds() {
        let ds = parse(&entries(&[
            "k8s_capi:vm:ubuntu:kubernetes",
            " k8s_capi : vm : flatcar : kubernetes ",
            "other:bm:rocky:kubernetes",
            "k8s_capi:vm:ubuntu:kubernetes",
        ]))
        .unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].name(), "k8s_capi");
        let kinds: Vec<_> = ds[0].provides().iter().map(|k| k.os).collect();
        assert_eq!(kinds, ["ubuntu", "flatcar"]);
        assert_eq!(ds[1].provides()[0].server_type, "bm");
        assert!(ds[0].external() && !ds[0].default_candidate());
        // Interned: the same text is the same allocation.
        let again = parse(&entries(&["k8s_capi:vm:ubuntu:kubernetes"])).unwrap();
        assert!(std::ptr::eq(again[0].name(), ds[0].name()));
    }

    #[test]
    fn malformed_entries_are_refused_by_name() {
        for bad in ["k8s_capi", "a:vm:ubuntu", "a:vm::kubernetes", "a:b:c:d:e"] {
            let err = parse(&entries(&[bad])).unwrap_err();
            assert_eq!(err.entry, bad);
            assert!(err.to_string().contains("name:server_type:os_distro:coe"));
        }
        assert!(parse(&[]).unwrap().is_empty());
    }
}
