//! The cluster and node group queries on every backend.
use super::*;
use crate::testing::TestDb;
use crate::Backend;
use magnum_core::objects::status::*;
use serde_json::json;

fn cluster(uuid: &str, project: &str) -> Cluster {
    Cluster {
        uuid: uuid.into(),
        name: Some("c1".into()),
        project_id: Some(project.into()),
        user_id: Some("u".into()),
        cluster_template_id: Some("t".into()),
        status: Some(CREATE_IN_PROGRESS.into()),
        labels: json!({"a": "1"}).as_object().cloned(),
        health_status_reason: json!({"api": "ok"}).as_object().cloned(),
        create_timeout: Some(60),
        floating_ip_enabled: Some(true),
        ..Default::default()
    }
}

fn nodegroup(uuid: &str, cluster: &str, name: &str, role: &str) -> NodeGroup {
    NodeGroup {
        uuid: uuid.into(),
        name: name.into(),
        cluster_id: cluster.into(),
        project_id: "p".into(),
        role: Some(role.into()),
        node_count: Some(3),
        min_node_count: Some(0),
        is_default: Some(true),
        node_addresses: Some(vec!["10.0.0.1".into()]),
        node_labels: json!({"zone": "a"}).as_object().cloned(),
        node_taints: Some(vec![
            json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
        ]),
        status: Some(CREATE_IN_PROGRESS.into()),
        ..Default::default()
    }
}

fn ctx(project: &str) -> RequestContext {
    RequestContext {
        project_id: Some(project.into()),
        ..Default::default()
    }
}

async fn round_trip(backend: Backend) {
    let t = TestDb::create_migrated(backend).await;
    let db = t.migrated().await;
    let id = "11111111-1111-1111-1111-111111111111";
    let ngs = [
        nodegroup(
            "21111111-1111-1111-1111-111111111111",
            id,
            "default-master",
            "master",
        ),
        nodegroup(
            "31111111-1111-1111-1111-111111111111",
            id,
            "default-worker",
            "worker",
        ),
    ];
    let stored = db.cluster_create(&cluster(id, "p"), &ngs).await.unwrap();
    assert_eq!(stored.labels, cluster(id, "p").labels);
    assert_eq!(
        stored.health_status_reason,
        cluster(id, "p").health_status_reason
    );
    assert!(stored.created_at.is_some() && stored.id > 0);
    let back = db.nodegroups_of(id).await.unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].node_taints, ngs[0].node_taints);
    assert_eq!(back[0].node_addresses, ngs[0].node_addresses);
    assert_eq!(back[1].role.as_deref(), Some("worker"));

    // Tenancy.
    assert!(db.cluster_by_uuid(&ctx("p"), id).await.unwrap().is_some());
    assert!(db.cluster_by_uuid(&ctx("q"), id).await.unwrap().is_none());
    assert_eq!(db.clusters_by_name(&ctx("p"), "c1").await.unwrap().len(), 1);
    let filter = ClusterFilter {
        status: vec![CREATE_IN_PROGRESS.into()],
        ..Default::default()
    };
    assert_eq!(
        db.cluster_list(&ctx("p"), &filter, &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(db
        .cluster_list(&ctx("q"), &filter, &Page::default())
        .await
        .unwrap()
        .is_empty());

    // A node group name is unique within its cluster; nothing half-made
    // stays behind when a create fails.
    let dup = nodegroup(
        "41111111-1111-1111-1111-111111111111",
        id,
        "default-worker",
        "worker",
    );
    assert!(matches!(
        db.nodegroup_create(&dup).await,
        Err(DbError::Duplicate)
    ));
    let other = "51111111-1111-1111-1111-111111111111";
    let bad = [
        nodegroup("61111111-1111-1111-1111-111111111111", other, "x", "worker"),
        nodegroup("71111111-1111-1111-1111-111111111111", other, "x", "worker"),
    ];
    assert!(db.cluster_create(&cluster(other, "p"), &bad).await.is_err());
    assert!(
        db.cluster_get(other).await.unwrap().is_none(),
        "the transaction rolled back"
    );

    // Saves are conditional on the status read.
    let mut c = db.cluster_get(id).await.unwrap().unwrap();
    c.api_address = Some("https://10.0.0.1:6443".into());
    assert!(db.cluster_save(&c, Some(CREATE_IN_PROGRESS)).await.unwrap());
    assert!(!db.cluster_save(&c, Some(UPDATE_IN_PROGRESS)).await.unwrap());
    assert_eq!(
        db.cluster_get(id).await.unwrap().unwrap().api_address,
        c.api_address
    );

    assert_eq!(db.cluster_stats(Some("p")).await.unwrap(), (1, 6));
    assert_eq!(db.cluster_stats(Some("q")).await.unwrap(), (0, 0));
    assert_eq!(db.cluster_stats(None).await.unwrap(), (1, 6));
    // Its certificates in the x509keypair table go with it, in one
    // transaction; a row it does not name stays.
    let keys: Vec<String> = (0..3)
        .map(|i| format!("a111111{i}-1111-1111-1111-111111111111"))
        .collect();
    for k in &keys {
        let pair = crate::X509KeyPair {
            uuid: k.clone(),
            certificate: Some("c".into()),
            ..Default::default()
        };
        db.x509keypair_create(&pair).await.unwrap();
    }
    assert!(db.cluster_destroy(id, &keys[..2]).await.unwrap());
    assert!(!db.cluster_destroy(id, &[]).await.unwrap());
    assert!(db.nodegroups_of(id).await.unwrap().is_empty());
    assert!(db.x509keypair_get(&keys[0]).await.unwrap().is_none());
    assert!(db.x509keypair_get(&keys[1]).await.unwrap().is_none());
    assert!(db.x509keypair_get(&keys[2]).await.unwrap().is_some());
}

/// Move a cluster as the status sync does (a settled status move).
pub(crate) async fn moved(
    db: &Database,
    id: &str,
    from: &str,
    to: &str,
    reason: Option<&str>,
    if_idle: bool,
) -> bool {
    let w = crate::Write::ClusterStatus {
        uuid: id.into(),
        from: vec![from.into()],
        to: to.into(),
        reason: reason.map(str::to_string),
        if_idle,
    };
    db.settle(&w, &[]).await.unwrap()
}

/// Many workers race to move one cluster out of CREATE_IN_PROGRESS:
/// exactly one wins.
async fn transitions_have_one_winner(backend: Backend) {
    let t = TestDb::create_migrated(backend).await;
    let db = t.migrated().await;
    let id = "81111111-1111-1111-1111-111111111111";
    db.cluster_create(&cluster(id, "p"), &[]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let to = if i % 2 == 0 {
                CREATE_COMPLETE
            } else {
                CREATE_FAILED
            };
            moved(&db, id, CREATE_IN_PROGRESS, to, Some("done"), false).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let c = db.cluster_get(id).await.unwrap().unwrap();
    assert!(matches!(
        c.status.as_deref(),
        Some(CREATE_COMPLETE | CREATE_FAILED)
    ));
    assert_eq!(c.status_reason.as_deref(), Some("done"));
    // A transition from a state the cluster is not in changes nothing.
    assert!(!moved(&db, id, DELETE_IN_PROGRESS, DELETE_COMPLETE, None, false).await);
    let in_progress = db.clusters_in_status(&IN_PROGRESS).await.unwrap();
    assert!(in_progress.is_empty());
}

backends!(round_trip, transitions_have_one_winner);
