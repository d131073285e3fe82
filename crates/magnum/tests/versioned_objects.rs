//! Our versioned-object primitives against upstream Magnum's own classes:
//! what we encode, upstream's `obj_from_primitive` accepts, and what
//! upstream's `obj_to_primitive` gives back decodes to the same object.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::NaiveDateTime;
use magnum_core::objects::{Cluster, ClusterTemplate, NodeGroup};
use magnum_core::ovo::{decode, encode};
use serde_json::{json, Value};
use support::venv;

fn through_upstream(primitives: &[Value]) -> Vec<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ovo_peer.py");
    let mut child = Command::new(venv().join("bin/python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for p in primitives {
        writeln!(stdin, "{p}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn at(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok()
}

#[test]
fn primitives_round_trip_through_upstream() {
    let template = ClusterTemplate {
        id: 3,
        uuid: "27e3153e-d5bf-4b7e-b517-fb518e17f34c".into(),
        name: Some("k8s".into()),
        project_id: Some("p".into()),
        user_id: Some("u".into()),
        coe: Some("kubernetes".into()),
        image_id: Some("fedora-coreos-40".into()),
        apiserver_port: Some(6443),
        docker_volume_size: Some(10),
        labels: json!({"kube_tag": "v1.30"}).as_object().cloned(),
        public: Some(false),
        hidden: Some(false),
        registry_enabled: Some(false),
        tls_disabled: Some(false),
        master_lb_enabled: Some(true),
        floating_ip_enabled: Some(true),
        server_type: Some("vm".into()),
        driver: Some("k8s_fedora_coreos_v1".into()),
        created_at: at("2026-11-24T10:00:00"),
        ..Default::default()
    };
    let cluster = Cluster {
        id: 7,
        uuid: "11111111-1111-1111-1111-111111111111".into(),
        name: Some("c1".into()),
        project_id: Some("p".into()),
        cluster_template_id: Some(template.uuid.clone()),
        status: Some("CREATE_IN_PROGRESS".into()),
        labels: json!({"k": "v"}).as_object().cloned(),
        health_status_reason: json!({"api": "ok"}).as_object().cloned(),
        create_timeout: Some(60),
        floating_ip_enabled: Some(true),
        master_lb_enabled: Some(false),
        created_at: at("2026-11-24T10:00:00"),
        updated_at: at("2026-11-24T10:05:00"),
        ..Default::default()
    };
    let nodegroup = NodeGroup {
        id: 1,
        uuid: "21111111-1111-1111-1111-111111111111".into(),
        name: "default-worker".into(),
        cluster_id: cluster.uuid.clone(),
        project_id: "p".into(),
        role: Some("worker".into()),
        node_count: Some(2),
        min_node_count: Some(0),
        is_default: Some(true),
        node_addresses: Some(vec!["10.0.0.5".into()]),
        node_labels: json!({"zone": "a"}).as_object().cloned(),
        node_taints: Some(vec![
            json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
        ]),
        created_at: at("2026-11-24T10:00:00"),
        ..Default::default()
    };
    let back = through_upstream(&[encode(&template), encode(&cluster), encode(&nodegroup)]);
    for b in &back {
        assert!(
            b.get("error").is_none(),
            "upstream refused our primitive: {b}"
        );
    }
    assert_eq!(back[0]["magnum_object.version"], "1.21");
    assert_eq!(decode::<ClusterTemplate>(&back[0]).unwrap(), template);
    assert_eq!(decode::<Cluster>(&back[1]).unwrap(), cluster);
    assert_eq!(decode::<NodeGroup>(&back[2]).unwrap(), nodegroup);
}
