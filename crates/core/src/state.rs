//! The cluster state machine, one place for API and conductor alike: the
//! statuses, the operations that move a cluster ([`Method`], by upstream's
//! conductor RPC names), where each may start and where it moves the
//! cluster ([`Method::gate`]), what a refused one answers
//! ([`Method::refusal`]), and where an outcome leaves the cluster and its
//! node groups ([`Status::failed`], [`Status::settled`],
//! [`nodegroup_moves`]).
//!
//! Statuses are stored and sent as upstream's strings (the constants of
//! [`crate::objects::status`]); [`Status`] is their typed form.

use crate::objects::status::*;
use crate::MagnumError;

/// A cluster's or node group's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    CreateInProgress,
    CreateFailed,
    CreateComplete,
    UpdateInProgress,
    UpdateFailed,
    UpdateComplete,
    DeleteInProgress,
    DeleteFailed,
    DeleteComplete,
    ResumeComplete,
    ResumeFailed,
    RestoreComplete,
    RollbackInProgress,
    RollbackFailed,
    RollbackComplete,
    SnapshotComplete,
    CheckComplete,
    AdoptComplete,
}

impl Status {
    /// Every status, in upstream's order.
    pub const ALL: [Status; 18] = [
        Status::CreateInProgress,
        Status::CreateFailed,
        Status::CreateComplete,
        Status::UpdateInProgress,
        Status::UpdateFailed,
        Status::UpdateComplete,
        Status::DeleteInProgress,
        Status::DeleteFailed,
        Status::DeleteComplete,
        Status::ResumeComplete,
        Status::ResumeFailed,
        Status::RestoreComplete,
        Status::RollbackInProgress,
        Status::RollbackFailed,
        Status::RollbackComplete,
        Status::SnapshotComplete,
        Status::CheckComplete,
        Status::AdoptComplete,
    ];

    /// Upstream's string.
    pub fn as_str(self) -> &'static str {
        ALL[Status::ALL.iter().position(|s| *s == self).unwrap_or(0)]
    }

    pub fn parse(s: &str) -> Option<Status> {
        ALL.iter().position(|a| *a == s).map(|i| Status::ALL[i])
    }

    /// `CREATE`, `UPDATE`, … : the action the status is a stage of.
    pub fn stem(self) -> &'static str {
        let s = self.as_str();
        s.split('_').next().unwrap_or(s)
    }

    pub fn in_progress(self) -> bool {
        IN_PROGRESS.contains(&self.as_str())
    }

    /// Where a failure of the action in progress leaves the cluster.
    pub fn failed(self) -> Status {
        match self {
            Status::CreateInProgress => Status::CreateFailed,
            Status::DeleteInProgress => Status::DeleteFailed,
            Status::RollbackInProgress => Status::RollbackFailed,
            _ => Status::UpdateFailed,
        }
    }

    /// Where the orchestration's outcome of the action `stem`
    /// (`CREATE`, `UPDATE`, `DELETE`, `ROLLBACK`) leaves the cluster.
    pub fn settled(stem: &str, failed: bool) -> Option<Status> {
        Status::parse(&format!(
            "{stem}_{}",
            if failed { "FAILED" } else { "COMPLETE" }
        ))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the node groups in progress go when their cluster's operation
/// ends in `cluster_to`: (from, to) pairs. Each group ends its own action
/// (a group being created fails as CREATE_FAILED whatever the cluster was
/// doing); groups being deleted are removed on success (not listed here).
pub fn nodegroup_moves(cluster_to: Status) -> Vec<(Status, Status)> {
    use Status::*;
    if cluster_to.as_str().ends_with("_FAILED") {
        vec![
            (CreateInProgress, CreateFailed),
            (UpdateInProgress, UpdateFailed),
            (DeleteInProgress, DeleteFailed),
        ]
    } else {
        vec![
            (CreateInProgress, CreateComplete),
            (UpdateInProgress, UpdateComplete),
        ]
    }
}

/// Where a cluster update may start: upstream's statuses and, ours, a
/// failed update (so an update is retried without rebuilding the cluster).
const UPDATE_RETRYABLE: [&str; 9] = [
    CREATE_COMPLETE,
    UPDATE_COMPLETE,
    RESUME_COMPLETE,
    RESTORE_COMPLETE,
    ROLLBACK_COMPLETE,
    SNAPSHOT_COMPLETE,
    CHECK_COMPLETE,
    ADOPT_COMPLETE,
    UPDATE_FAILED,
];

/// A status change that must hold for an operation to be queued: the
/// cluster moves from one of `from` to `to` (`to: None` leaves the status
/// alone but still requires one of `from`).
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    pub from: &'a [&'a str],
    pub to: Option<&'a str>,
}

/// An operation on a cluster, by upstream's conductor RPC method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ClusterCreate,
    ClusterDelete,
    ClusterUpdate,
    ClusterResize,
    ClusterUpgrade,
    NodegroupCreate,
    NodegroupUpdate,
    NodegroupDelete,
    RotateCaCertificate,
}

impl Method {
    pub const ALL: [Method; 9] = [
        Method::ClusterCreate,
        Method::ClusterDelete,
        Method::ClusterUpdate,
        Method::ClusterResize,
        Method::ClusterUpgrade,
        Method::NodegroupCreate,
        Method::NodegroupUpdate,
        Method::NodegroupDelete,
        Method::RotateCaCertificate,
    ];

    /// Upstream's RPC method name.
    pub fn name(self) -> &'static str {
        match self {
            Method::ClusterCreate => "cluster_create",
            Method::ClusterDelete => "cluster_delete",
            Method::ClusterUpdate => "cluster_update",
            Method::ClusterResize => "cluster_resize",
            Method::ClusterUpgrade => "cluster_upgrade",
            Method::NodegroupCreate => "nodegroup_create",
            Method::NodegroupUpdate => "nodegroup_update",
            Method::NodegroupDelete => "nodegroup_delete",
            Method::RotateCaCertificate => "rotate_ca_certificate",
        }
    }

    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Where a cluster must be, and where it moves, for this operation to
    /// be queued. `health_only`: a `cluster_update` that changes no node
    /// count (upstream's health reports), allowed in any status.
    pub fn gate(self, health_only: bool) -> Gate<'static> {
        match self {
            Method::ClusterCreate => Gate {
                from: &[],
                to: Some(CREATE_IN_PROGRESS),
            },
            Method::ClusterDelete => Gate {
                from: &ALL,
                to: Some(DELETE_IN_PROGRESS),
            },
            Method::ClusterUpdate if health_only => Gate {
                from: &ALL,
                to: None,
            },
            Method::ClusterResize => Gate {
                from: &RESIZABLE,
                to: Some(UPDATE_IN_PROGRESS),
            },
            // Ours: also after a failed update (a retry from failure).
            Method::ClusterUpdate => Gate {
                from: &UPDATE_RETRYABLE,
                to: Some(UPDATE_IN_PROGRESS),
            },
            _ => Gate {
                from: &UPDATABLE,
                to: Some(UPDATE_IN_PROGRESS),
            },
        }
    }

    /// Where a create may be driven again (`POST
    /// /v1/clusters/{ident}/actions/retry`, ours): from a failed create,
    /// back into progress, its failed node groups with it.
    pub fn create_retry_gate() -> Gate<'static> {
        Gate {
            from: &[CREATE_FAILED],
            to: Some(CREATE_IN_PROGRESS),
        }
    }

    /// The refusal of this operation for a cluster in `status`, in
    /// upstream's words.
    pub fn refusal(self, status: &str) -> MagnumError {
        let what = match self {
            Method::ClusterResize => "Resizing a cluster",
            Method::ClusterUpgrade => "Upgrading a cluster",
            Method::NodegroupCreate => "Creating a nodegroup",
            Method::NodegroupUpdate => "Updating a nodegroup",
            Method::NodegroupDelete => "Deleting a nodegroup",
            _ => "Updating a cluster",
        };
        MagnumError::NotSupported(format!("{what} when status is \"{status}\""))
    }

    /// The status the cluster is in while this operation runs.
    pub fn in_progress(self) -> Status {
        match self {
            Method::ClusterCreate => Status::CreateInProgress,
            Method::ClusterDelete => Status::DeleteInProgress,
            _ => Status::UpdateInProgress,
        }
    }

    /// The notification's action (`create`, `update`, `delete`).
    pub fn action(self) -> &'static str {
        match self {
            Method::ClusterCreate => "create",
            Method::ClusterDelete => "delete",
            _ => "update",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_as_upstream_strings() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("CREATE_SOMETHING"), None);
        assert_eq!(Status::UpdateInProgress.stem(), "UPDATE");
        assert_eq!(
            Status::settled("ROLLBACK", false),
            Some(Status::RollbackComplete)
        );
        assert_eq!(Status::settled("CREATE", true), Some(Status::CreateFailed));
        assert!(Status::DeleteInProgress.in_progress());
        assert!(!Status::DeleteFailed.in_progress());
    }

    #[test]
    fn methods_gate_as_upstream() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()), Some(m));
        }
        // A delete goes from anywhere, a resize also after a failed update,
        // an update from a finished state or (ours) a failed update, an
        // upgrade only from a finished state.
        assert!(Method::ClusterDelete
            .gate(false)
            .from
            .contains(&CREATE_IN_PROGRESS));
        assert!(Method::ClusterResize
            .gate(false)
            .from
            .contains(&UPDATE_FAILED));
        let update = Method::ClusterUpdate.gate(false).from;
        assert!(update.contains(&UPDATE_FAILED));
        assert!(UPDATABLE.iter().all(|s| update.contains(s)));
        assert!(!update.contains(&CREATE_FAILED));
        assert!(!update.contains(&UPDATE_IN_PROGRESS));
        assert!(!Method::ClusterUpgrade
            .gate(false)
            .from
            .contains(&UPDATE_FAILED));
        assert_eq!(Method::create_retry_gate().from, [CREATE_FAILED]);
        assert_eq!(Method::ClusterUpdate.gate(true).to, None);
        assert_eq!(
            Method::NodegroupDelete
                .refusal("CREATE_IN_PROGRESS")
                .to_string(),
            "Deleting a nodegroup when status is \"CREATE_IN_PROGRESS\" is not supported."
        );
    }

    #[test]
    fn failures_take_node_groups_with_them() {
        assert_eq!(Status::CreateInProgress.failed(), Status::CreateFailed);
        assert_eq!(Status::UpdateInProgress.failed(), Status::UpdateFailed);
        let moves = nodegroup_moves(Status::CreateFailed);
        assert!(moves.contains(&(Status::CreateInProgress, Status::CreateFailed)));
        let moves = nodegroup_moves(Status::UpdateComplete);
        assert!(moves.contains(&(Status::UpdateInProgress, Status::UpdateComplete)));
        assert!(!moves.iter().any(|(f, _)| *f == Status::DeleteInProgress));
    }
}
