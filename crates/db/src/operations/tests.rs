//! The operation queue on every backend: gates, claims, leases, creates under a quota.

use super::*;
use crate::testing::TestDb;
use crate::{Backend, Database};
use magnum_core::objects::status::*;

fn cluster(uuid: &str) -> Cluster {
    Cluster {
        uuid: uuid.into(),
        name: Some("c".into()),
        project_id: Some("p".into()),
        status: Some(CREATE_IN_PROGRESS.into()),
        ..Default::default()
    }
}

async fn queue_and_leases(backend: Backend) {
    let t = TestDb::create_migrated(backend).await;
    let db = t.migrated().await;
    let id = "a1111111-1111-1111-1111-111111111111";
    let create = Operation::new(id, "cluster_create", Map::new(), Map::new());
    db.cluster_create_queued(&cluster(id), &[], &create, None)
        .await
        .unwrap();
    // An update waits behind the create, and cannot pass a gate the
    // cluster is not in.
    let update = Operation::new(id, "cluster_update", Map::new(), Map::new());
    let gate = Gate {
        from: &[CREATE_COMPLETE],
        to: Some(UPDATE_IN_PROGRESS),
    };
    assert!(!db.operation_enqueue(&update, gate).await.unwrap());
    let gate = Gate {
        from: &[CREATE_IN_PROGRESS],
        to: None,
    };
    assert!(db.operation_enqueue(&update, gate).await.unwrap());
    assert!(db
        .operation_claim(&update.uuid, "b", 30)
        .await
        .unwrap()
        .is_none());

    // One claimant wins; its claim is a token of its own.
    let got = db.operation_claim(&create.uuid, "a", 30).await.unwrap();
    let a = got.unwrap().owner.unwrap();
    assert!(a.starts_with("a "), "{a}");
    assert!(db
        .operation_claim(&create.uuid, "b", 30)
        .await
        .unwrap()
        .is_none());
    assert!(db.operation_renew(&create.uuid, &a, 30).await.unwrap());
    assert!(!db.operation_renew(&create.uuid, "a", 30).await.unwrap());
    assert!(!db.operation_renew(&create.uuid, "b", 30).await.unwrap());
    // Not due while the lease holds; due once it ran out.
    assert!(db
        .operations_due(0)
        .await
        .unwrap()
        .iter()
        .all(|o| o.uuid != create.uuid));
    assert!(db.operation_renew(&create.uuid, &a, -5).await.unwrap());
    let due = db.operations_due(3600).await.unwrap();
    assert_eq!(due[0].uuid, create.uuid);
    // Claimed again by the same host: a new attempt, and the old one
    // is fenced off.
    let again = db
        .operation_claim(&create.uuid, "a", 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 2);
    let a2 = again.owner.unwrap();
    assert_ne!(a, a2);
    let stale = crate::Fence {
        operation: create.uuid.clone(),
        token: a.clone(),
    };
    let fields = serde_json::json!({"stack_id": "s-stale"})
        .as_object()
        .cloned()
        .unwrap();
    assert!(!db
        .fenced(&stale, &[crate::Write::cluster(id, fields.clone())])
        .await
        .unwrap());
    assert_eq!(db.cluster_get(id).await.unwrap().unwrap().stack_id, None);
    assert!(!db.operation_finish(&create.uuid, &a).await.unwrap());
    // The holder's results and its retirement land together.
    let current = crate::Fence {
        operation: create.uuid.clone(),
        token: a2.clone(),
    };
    assert!(db
        .fenced(
            &current,
            &[crate::Write::cluster(id, fields), crate::Write::Finish]
        )
        .await
        .unwrap());
    assert_eq!(
        db.cluster_get(id)
            .await
            .unwrap()
            .unwrap()
            .stack_id
            .as_deref(),
        Some("s-stale")
    );
    assert!(db.operation_get(&create.uuid).await.unwrap().is_none());
    assert!(!db.fenced(&current, &[]).await.unwrap());

    // A delete cancels what nobody claimed.
    let delete = Operation::new(id, "cluster_delete", Map::new(), Map::new());
    let gate = Gate {
        from: &[CREATE_IN_PROGRESS],
        to: Some(DELETE_IN_PROGRESS),
    };
    assert!(db.operation_enqueue(&delete, gate).await.unwrap());
    let left = db.operations_of(id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].method, "cluster_delete");
    assert_eq!(
        db.cluster_get(id).await.unwrap().unwrap().status.as_deref(),
        Some(DELETE_IN_PROGRESS)
    );
}

/// Creates at once in two projects, each starting with no cluster (and
/// no lock row): exactly the limit is queued in each, and every other
/// create is refused having seen exactly the limit, writing nothing.
async fn quota_holds_under_concurrent_creates(backend: Backend) {
    let t = TestDb::create_migrated(backend).await;
    t.migrated().await.close().await;
    let settings = crate::PoolSettings {
        max_connections: 10,
        ..Default::default()
    };
    let db = Database::connect_with(&t.url, settings).await.unwrap();
    let bursts: [(&str, usize, i64); 2] = [("p", 40, 20), ("q", 12, 3)];
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(
        bursts.iter().map(|(_, n, _)| n).sum(),
    ));
    let mut creates = tokio::task::JoinSet::new();
    for (project, n, limit) in bursts {
        for _ in 0..n {
            let (db, start) = (db.clone(), start.clone());
            creates.spawn(async move {
                let uuid = uuid::Uuid::new_v4().to_string();
                let mut c = cluster(&uuid);
                c.project_id = Some(project.into());
                let op = Operation::new(&uuid, "cluster_create", Map::new(), Map::new());
                start.wait().await;
                let got = db.cluster_create_queued(&c, &[], &op, Some(limit)).await;
                (project, uuid, got.unwrap())
            });
        }
    }
    let outcomes = creates.join_all().await;
    for (project, n, limit) in bursts {
        let mine: Vec<_> = outcomes.iter().filter(|(p, ..)| *p == project).collect();
        let queued: Vec<_> = mine
            .iter()
            .filter(|(.., o)| *o == CreateOutcome::Queued)
            .collect();
        assert_eq!(queued.len() as i64, limit, "{project}: queued");
        for (_, uuid, o) in &mine {
            match o {
                CreateOutcome::Queued => {
                    assert_eq!(db.operations_of(uuid).await.unwrap().len(), 1);
                }
                CreateOutcome::OverQuota { clusters } => {
                    assert_eq!(*clusters, limit, "{project}: a refusal saw {clusters}");
                    assert!(db.cluster_get(uuid).await.unwrap().is_none());
                    assert!(db.operations_of(uuid).await.unwrap().is_empty());
                }
            }
        }
        assert_eq!(mine.len(), n);
        assert_eq!(db.cluster_count(project).await.unwrap(), limit, "{project}");
    }
    // Without a limit (upstream's casts, adopted) nothing is counted.
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut c = cluster(&uuid);
    c.project_id = Some("p".into());
    let op = Operation::new(&uuid, "cluster_create", Map::new(), Map::new());
    assert_eq!(
        db.cluster_create_queued(&c, &[], &op, None).await.unwrap(),
        CreateOutcome::Queued
    );
    // A limit of 0 refuses the first create of a project.
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut c = cluster(&uuid);
    c.project_id = Some("r".into());
    let op = Operation::new(&uuid, "cluster_create", Map::new(), Map::new());
    assert_eq!(
        db.cluster_create_queued(&c, &[], &op, Some(0))
            .await
            .unwrap(),
        CreateOutcome::OverQuota { clusters: 0 }
    );
    db.close().await;
}

/// A project's count in `rs_project_quota`.
async fn counted(db: &Database, project: &str) -> Option<i32> {
    #[derive(sqlx::FromRow)]
    struct Row {
        clusters: Option<i32>,
    }
    let q = Query::select()
        .column(Alias::new("clusters"))
        .from(Alias::new(PROJECT_QUOTA.name))
        .and_where(c("project_id").eq(project))
        .to_owned();
    let row: Option<Row> = db.fetch_optional(&q).await.unwrap();
    row.and_then(|r| r.clusters)
}

/// The count follows creates and destroys; clusters written behind its
/// back (upstream's programs on the same database) are counted when a
/// create would take the project's last slot, and when the count is
/// older than a minute.
async fn quota_count_follows_every_writer(backend: Backend) {
    let t = TestDb::create_migrated(backend).await;
    let db = t.migrated().await;
    let create = |limit: i64| {
        let db = db.clone();
        async move {
            let uuid = uuid::Uuid::new_v4().to_string();
            let mut c = cluster(&uuid);
            c.project_id = Some("s".into());
            let op = Operation::new(&uuid, "cluster_create", Map::new(), Map::new());
            let got = db.cluster_create_queued(&c, &[], &op, Some(limit));
            (uuid, got.await.unwrap())
        }
    };
    let (first, _) = create(3).await;
    assert_eq!(create(3).await.1, CreateOutcome::Queued);
    assert_eq!(counted(&db, "s").await, Some(2));
    assert!(db.cluster_destroy(&first, &[]).await.unwrap());
    assert!(!db.cluster_destroy(&first, &[]).await.unwrap());
    assert_eq!(counted(&db, "s").await, Some(1));
    // Upstream's API inserts a cluster: the count does not see it.
    let mut other = cluster("0ther000-0000-4000-8000-000000000001");
    other.project_id = Some("s".into());
    db.cluster_create(&other, &[]).await.unwrap();
    assert_eq!(counted(&db, "s").await, Some(1));
    // Two of three, by the count; the cluster counted in.
    assert_eq!(create(3).await.1, CreateOutcome::Queued);
    assert_eq!(counted(&db, "s").await, Some(2));
    // The last slot: counted afresh, 3 already, refused, nothing
    // written.
    let (uuid, got) = create(3).await;
    assert_eq!(got, CreateOutcome::OverQuota { clusters: 3 });
    assert!(db.cluster_get(&uuid).await.unwrap().is_none());
    assert_eq!(db.cluster_count("s").await.unwrap(), 3);
    // A stale count is counted afresh.
    let stale = Query::update()
        .table(Alias::new(PROJECT_QUOTA.name))
        .value(
            Alias::new("counted_at"),
            now() - RECOUNT_AFTER - chrono::TimeDelta::seconds(1),
        )
        .to_owned();
    db.execute(&stale).await.unwrap();
    assert_eq!(create(10).await.1, CreateOutcome::Queued);
    assert_eq!(counted(&db, "s").await, Some(4));
    assert_eq!(db.cluster_count("s").await.unwrap(), 4);
    db.close().await;
}

backends!(
    queue_and_leases,
    quota_holds_under_concurrent_creates,
    quota_count_follows_every_writer
);
