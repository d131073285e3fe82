//! The attempts this conductor runs right now, with their leases: what a
//! guru meditation report lists, and what the running-operations metric
//! counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use magnum_db::Operation;

/// One operation this conductor holds.
#[derive(Debug, Clone)]
pub struct HeldOperation {
    pub operation: String,
    pub method: String,
    pub cluster: String,
    /// The attempt's number (1 for the first).
    pub attempt: i64,
    /// The claim's owner (host and attempt token).
    pub owner: String,
    /// When this attempt started.
    pub since: DateTime<Utc>,
    /// Until when the lease holds, as last claimed or renewed.
    pub lease_until: Option<DateTime<Utc>>,
}

#[derive(Clone, Default)]
pub(crate) struct Attempts(Arc<Mutex<HashMap<String, HeldOperation>>>);

/// An attempt listed while it lives.
pub(crate) struct Listed {
    attempts: Attempts,
    uuid: String,
    _running: magnum_core::metrics::Running,
}

impl Attempts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeldOperation>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// List the attempt at `op` (as claimed) until the guard is dropped.
    pub fn begin(&self, op: &Operation) -> Listed {
        let held = HeldOperation {
            operation: op.uuid.clone(),
            method: op.method.clone(),
            cluster: op.cluster_uuid.clone(),
            attempt: op.attempts,
            owner: op.owner.clone().unwrap_or_default(),
            since: Utc::now(),
            lease_until: op.lease_until.map(|t| t.and_utc()),
        };
        self.map().insert(op.uuid.clone(), held);
        Listed {
            attempts: self.clone(),
            uuid: op.uuid.clone(),
            _running: magnum_core::metrics::operation_started(&op.method),
        }
    }

    /// The lease of `uuid` was renewed for `lease` seconds.
    pub fn renewed(&self, uuid: &str, lease: i64) {
        if let Some(h) = self.map().get_mut(uuid) {
            h.lease_until = Some(Utc::now() + chrono::Duration::seconds(lease));
        }
    }

    /// Every attempt listed now, oldest first.
    pub fn list(&self) -> Vec<HeldOperation> {
        let mut all: Vec<HeldOperation> = self.map().values().cloned().collect();
        all.sort_by_key(|h| h.since);
        all
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.attempts.map().remove(&self.uuid);
    }
}
