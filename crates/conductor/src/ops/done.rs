//! What an attempt concludes: the writes recorded with its operation's
//! retirement, and the failures that end a cluster or node group in a
//! `*_FAILED` status with a reason.

use super::*;

/// What an attempt concluded: the writes recorded with its operation's
/// retirement and, for a failure, the action the bus hears failed.
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub writes: Vec<Write>,
    pub failed: Option<&'static str>,
}

impl Done {
    pub(crate) fn writing(writes: Vec<Write>) -> Done {
        Done {
            writes,
            failed: None,
        }
    }
}

/// The cluster from `from` to `to` (a failure) and its node groups in
/// progress with it, as one set of writes.
pub(crate) fn failure(cluster_uuid: &str, from: &str, to: &str, reason: &str) -> Done {
    let to = Status::parse(to).unwrap_or(Status::UpdateFailed);
    let mut writes = vec![Write::ClusterStatus {
        uuid: cluster_uuid.into(),
        from: vec![from.into()],
        to: to.as_str().into(),
        reason: Some(reason.into()),
        if_idle: false,
    }];
    for (ng_from, ng_to) in nodegroup_moves(to) {
        writes.push(Write::NodegroupsStatus {
            cluster_uuid: cluster_uuid.into(),
            from: vec![ng_from.as_str().into()],
            to: ng_to.as_str().into(),
            reason: Some(reason.into()),
        });
    }
    Done {
        writes,
        failed: Some(match to {
            Status::CreateFailed => "create",
            Status::DeleteFailed => "delete",
            _ => "update",
        }),
    }
}

/// An update that failed: `done`'s writes, then the cluster and its node
/// groups in progress to UPDATE_FAILED.
pub(crate) fn update_failure(done: Done, cluster_uuid: &str, reason: &str) -> Done {
    let mut f = failure(cluster_uuid, UPDATE_IN_PROGRESS, UPDATE_FAILED, reason);
    let mut writes = done.writes;
    writes.append(&mut f.writes);
    Done { writes, ..f }
}

/// A resize that failed: the group's count restored and its failure said,
/// then the cluster's.
pub(crate) fn resize_failure(
    cluster_uuid: &str,
    ng_uuid: &str,
    count: Option<i64>,
    reason: &str,
) -> Done {
    let restore = Write::nodegroup(
        ng_uuid,
        fields(json!({ "node_count": count, "status": UPDATE_FAILED, "status_reason": reason })),
    );
    update_failure(Done::writing(vec![restore]), cluster_uuid, reason)
}

/// The cluster's failure among an outcome's writes: the status it moves
/// to and why.
pub(crate) fn done_failure(writes: &[Write]) -> Option<(String, String)> {
    writes.iter().find_map(|w| match w {
        Write::ClusterStatus {
            to,
            reason: Some(r),
            ..
        } if to.ends_with("_FAILED") => Some((to.clone(), r.clone())),
        _ => None,
    })
}
