//! Clusters as real Heat stacks, for every COE: the real `openstack coe`
//! client (by password through Keystone's catalog) drives our all-in-one,
//! whose conductor drives PyPI Heat (`scripts/heat.sh`) through each
//! cluster's trust. Nova, Neutron, Cinder and Octavia resources are stood
//! in for by the test environment `tests/heat/fake-cloud-env.yaml`, so the
//! stacks live their whole life in the real Heat engine.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cloud::*;
use support::*;

/// How long one stack operation may take here (three clusters share one
/// Heat engine).
const STEP_SECS: u64 = 600;

/// One COE's driver, as a user meets it.
struct Case {
    /// The cluster's name, and the prefix of its templates'.
    name: &'static str,
    coe: &'static str,
    image: &'static str,
    driver: &'static str,
    /// The version label, the default version, the upgrade's version.
    version_label: &'static str,
    version: &'static str,
    upgraded: &'static str,
    /// api_address is `<scheme>://<floating ip>:<port>`.
    scheme: &'static str,
    port: u16,
}

const CASES: [Case; 3] = [
    Case {
        name: "k8s",
        coe: "kubernetes",
        image: "fedora-coreos-40",
        driver: "k8s_fedora_coreos_v1",
        version_label: "kube_tag",
        version: "v1.30.4",
        upgraded: "v1.31.2",
        scheme: "https",
        port: 6443,
    },
    Case {
        name: "swarm",
        coe: "swarm-mode",
        image: "ubuntu-24.04",
        driver: "swarm_mode_ubuntu_v1",
        version_label: "docker_version",
        version: "27.3.1",
        upgraded: "27.4.0",
        scheme: "tcp",
        port: 2376,
    },
    Case {
        name: "mesos",
        coe: "mesos",
        image: "ubuntu-24.04",
        driver: "mesos_ubuntu_v1",
        version_label: "mesos_version",
        version: "1.7.1",
        upgraded: "1.8.1",
        scheme: "http",
        port: 8080,
    },
];

/// The real client as project A's member; fails the test on an error.
fn coe(args: &[&str]) -> String {
    let mut all = vec!["coe"];
    all.extend_from_slice(args);
    let out = openstack_as("a-member", "project-a", &all);
    assert!(
        out.status.success(),
        "openstack {all:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A template of project A's member on the test cloud (network `public`,
/// flavor `m1.small`, keypair `kp`), with `extra` options.
fn template(name: &str, coe_name: &str, image: &str, extra: &[&str]) {
    let mut args = vec![
        "cluster",
        "template",
        "create",
        name,
        "--coe",
        coe_name,
        "--image",
        image,
        "--external-network",
        "public",
        "--flavor",
        "m1.small",
        "--keypair",
        "kp",
    ];
    args.extend_from_slice(extra);
    coe(&args);
}

fn coe_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-f", "json"]);
    let out = coe(&all);
    let start = out.find(['{', '[']).unwrap_or(0);
    serde_json::from_str(&out[start..]).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Wait for the cluster's current operation (`CREATE`, `UPDATE`) to end,
/// and require it to have ended well.
fn settled(url: &str, cluster: &str, action: &str) -> Value {
    let (done, failed) = (format!("{action}_COMPLETE"), format!("{action}_FAILED"));
    let c = wait_status(url, cluster, "a-member", &[&done, &failed], STEP_SECS);
    assert_eq!(c["status"], done.as_str(), "{c}");
    c
}

/// `openstack coe cluster config`: what the COE's own client needs, with a
/// client certificate the cluster's CA signed (Mesos has no such config).
fn cluster_config(case: &Case, api: &str) {
    let dir = tempdir(&format!("config-{}", case.name));
    let out = coe(&[
        "cluster",
        "config",
        case.name,
        "--dir",
        dir.to_str().unwrap(),
        "--output-certs",
        "--force",
    ]);
    match case.coe {
        "kubernetes" => {
            assert!(out.contains("KUBECONFIG="), "{out}");
            let kc = std::fs::read_to_string(dir.join("config")).unwrap();
            assert!(kc.contains(&format!("server: {api}")), "{kc}");
        }
        "swarm-mode" => {
            assert!(out.contains(&format!("DOCKER_HOST={api}\n")), "{out}");
            assert!(out.contains("DOCKER_TLS_VERIFY=True"), "{out}");
        }
        _ => return,
    }
    let verified = run(std::process::Command::new("openssl")
        .current_dir(&dir)
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"]));
    assert!(
        String::from_utf8_lossy(&verified.stdout).contains("cert.pem: OK"),
        "{}",
        text(&verified)
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Poll a node group until `done` holds (or it is gone, `None`).
fn wait_nodegroup(url: &str, cluster: &str, ng: &str, done: impl Fn(Option<&Value>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(STEP_SECS);
    loop {
        let (s, _, v) = call(
            url,
            "GET",
            &format!("/v1/clusters/{cluster}/nodegroups/{ng}"),
            Some(&polling_token("a-member", "project-a")),
            None,
        );
        if done((s != 404).then_some(&v)) {
            return;
        }
        assert!(Instant::now() < deadline, "node group {ng}: {s} {v}");
        std::thread::sleep(Duration::from_millis(1000));
    }
}

/// The stack's parameters, as Heat holds them.
fn stack_parameters(stack_name: &str, stack_id: &str) -> Value {
    let tok = token("a-member", "project-a");
    let (s, _, body) = http_with(
        "http://127.0.0.1:8004",
        "GET",
        &format!("/v1/{}/stacks/{stack_name}/{stack_id}", project_a(&tok)),
        &[("X-Auth-Token", &tok)],
        None,
    );
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["stack"]["parameters"].clone()
}

/// The stack's `ca_generation` parameter.
fn stack_parameter(stack_name: &str, stack_id: &str) -> String {
    stack_parameters(stack_name, stack_id)["ca_generation"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The members of the default worker group in the cluster's stack, sorted.
fn worker_members(stack_name: &str, stack_id: &str) -> Vec<String> {
    let mut members: Vec<String> = stack_resources(stack_name, stack_id)
        .iter()
        .filter(|r| r["parent_resource"] == "group")
        .filter_map(|r| r["resource_name"].as_str().map(str::to_string))
        .collect();
    members.sort();
    members
}

/// One cluster's whole life through the client: create, scale up, resize
/// removing a named node, a node group of its own, upgrade, delete.
fn lifecycle(url: &str, case: &Case) {
    let name = case.name;
    let (t1, t2) = (format!("{name}-t"), format!("{name}-t2"));
    for (t, version) in [(&t1, case.version), (&t2, case.upgraded)] {
        template(
            t,
            case.coe,
            case.image,
            &[
                "--master-flavor",
                "m1.medium",
                "--docker-volume-size",
                "5",
                "--labels",
                &format!("{}={version}", case.version_label),
            ],
        );
    }
    let t = coe_json(&["cluster", "template", "show", &t1]);
    assert_eq!(t["driver"], case.driver, "{t}");

    // Create: a stack in Heat, CREATE_COMPLETE with addresses.
    let out = coe(&[
        "cluster",
        "create",
        name,
        "--cluster-template",
        &t1,
        "--node-count",
        "2",
        "--timeout",
        "30",
    ]);
    assert!(out.contains("accepted"), "{out}");
    let c = settled(url, name, "CREATE");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    let shown = coe_json(&["cluster", "show", name]);
    let api = shown["api_address"].as_str().unwrap_or_default();
    assert!(
        api.starts_with(&format!("{}://172.24.", case.scheme))
            && api.ends_with(&format!(":{}", case.port)),
        "{shown}"
    );
    assert_eq!(shown["coe_version"], case.version, "{shown}");
    assert_eq!(shown["master_addresses"].as_array().unwrap().len(), 1);
    assert_eq!(shown["node_addresses"].as_array().unwrap().len(), 2);
    cluster_config(case, api);
    let stack_name = format!("{name}-{}", &uuid[..12]);
    let stack_id = c["cluster_id"].as_str().unwrap().to_string();
    let stacks = heat_stacks(&stack_name);
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert_eq!(stacks[0]["id"], stack_id.as_str());
    assert_eq!(stacks[0]["stack_status"], "CREATE_COMPLETE");

    // Scale up through the stack: three workers.
    coe(&["cluster", "update", name, "--node-count", "3"]);
    let c = settled(url, name, "UPDATE");
    assert_eq!(c["node_addresses"].as_array().unwrap().len(), 3, "{c}");
    assert_eq!(worker_members(&stack_name, &stack_id), ["0", "1", "2"]);

    // Resize down to one, removing a named node: Heat removes it (index
    // 0), then the newest (2).
    coe(&[
        "cluster",
        "resize",
        name,
        "1",
        "--nodes-to-remove",
        &format!("{name}-node-0"),
    ]);
    let c = settled(url, name, "UPDATE");
    assert_eq!(c["node_count"], 1, "{c}");
    assert_eq!(c["node_addresses"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(worker_members(&stack_name, &stack_id), ["1"]);

    // A node group of its own: a stack of its own, joining the cluster's.
    coe(&[
        "nodegroup",
        "create",
        name,
        "ng1",
        "--node-count",
        "2",
        "--flavor",
        "m1.small",
    ]);
    wait_nodegroup(url, &uuid, "ng1", |ng| {
        ng.is_some_and(|ng| ng["status"] == "CREATE_COMPLETE" || ng["status"] == "CREATE_FAILED")
    });
    let ng = coe_json(&["nodegroup", "show", name, "ng1"]);
    assert_eq!(ng["status"], "CREATE_COMPLETE", "{ng}");
    assert_eq!(ng["node_addresses"].as_array().unwrap().len(), 2, "{ng}");
    let ng_stack = format!("{stack_name}-ng1");
    let stacks = heat_stacks(&ng_stack);
    assert_eq!(stacks.len(), 1, "{stacks:?}");
    assert_eq!(stacks[0]["stack_status"], "CREATE_COMPLETE");
    // Recorded as the group's stack_id, as upstream's Heat driver does.
    assert_eq!(ng["stack_id"], stacks[0]["id"], "{ng}");
    let c = settled(url, name, "UPDATE");
    assert_eq!(c["node_count"], 3, "{c}");
    // ... and goes with its stack.
    coe(&["nodegroup", "delete", name, "ng1"]);
    wait_nodegroup(url, &uuid, "ng1", |ng| ng.is_none());
    assert!(heat_stacks(&ng_stack).is_empty());

    // Upgrade to the template with the newer version.
    coe(&["cluster", "upgrade", name, &t2]);
    let c = settled(url, name, "UPDATE");
    assert_eq!(c["coe_version"], case.upgraded, "{c}");
    let stack = &heat_stacks(&stack_name)[0];
    assert_eq!(stack["stack_status"], "UPDATE_COMPLETE", "{stack}");

    // CA rotation: new CAs, and the stack made anew around them.
    let ca = |uuid: &str| {
        let (s, _, v) = call(
            url,
            "GET",
            &format!("/v1/certificates/{uuid}"),
            Some(&token("a-member", "project-a")),
            None,
        );
        assert_eq!(s, 200, "{v}");
        v["pem"].as_str().unwrap().to_string()
    };
    let (ca_before, generation_before) = (ca(&uuid), stack_parameter(&stack_name, &stack_id));
    assert!(!generation_before.is_empty());
    coe(&["ca", "rotate", name]);
    settled(url, name, "UPDATE");
    assert_ne!(ca(&uuid), ca_before);
    let generation = stack_parameter(&stack_name, &stack_id);
    assert!(
        !generation.is_empty() && generation != generation_before,
        "{generation}"
    );

    // Delete: the stack goes from Heat, the cluster from our database.
    let out = coe(&["cluster", "delete", name]);
    assert!(out.contains("accepted"), "{out}");
    wait_status(url, &uuid, "a-member", &["gone"], STEP_SECS);
    assert!(heat_stacks(&stack_name).is_empty());
    for t in [&t1, &t2] {
        coe(&["cluster", "template", "delete", t]);
    }
}

/// A node that fails to boot: CREATE_FAILED naming the failed resource
/// and its reason; then deleted.
fn failing_node(url: &str, case: &Case) {
    let name = format!("fail-me-{}", case.name);
    let out = coe(&[
        "cluster",
        "create",
        &name,
        "--cluster-template",
        &format!("fail-{}", case.name),
        "--node-count",
        "1",
    ]);
    assert!(out.contains("accepted"), "{out}");
    let bad = wait_status(
        url,
        &name,
        "a-member",
        &["CREATE_COMPLETE", "CREATE_FAILED"],
        STEP_SECS,
    );
    assert_eq!(bad["status"], "CREATE_FAILED", "{bad}");
    let reason = bad["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("nova_boot") && reason.contains("Test Resource failed"),
        "{reason}"
    );
    let shown = coe_json(&["cluster", "show", &name]);
    assert_eq!(shown["status_reason"], reason);
    let uuid = bad["uuid"].as_str().unwrap().to_string();
    coe(&["cluster", "delete", &name]);
    wait_status(url, &uuid, "a-member", &["gone"], STEP_SECS);
    assert!(heat_stacks(&format!("{name}-{}", &uuid[..12])).is_empty());
    coe(&[
        "cluster",
        "template",
        "delete",
        &format!("fail-{}", case.name),
    ]);
}

/// Several masters behind an Octavia load balancer: the API address is
/// the balancer's floating IP and every master is a pool member.
fn masters_behind_a_load_balancer(url: &str) {
    template(
        "ha-t",
        "kubernetes",
        "ubuntu-24.04",
        &["--master-lb-enabled"],
    );
    let t = coe_json(&["cluster", "template", "show", "ha-t"]);
    assert_eq!(t["driver"], "k8s_ubuntu_v1", "{t}");
    coe(&[
        "cluster",
        "create",
        "ha",
        "--cluster-template",
        "ha-t",
        "--master-count",
        "3",
        "--node-count",
        "1",
    ]);
    let c = settled(url, "ha", "CREATE");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    assert_eq!(c["master_addresses"].as_array().unwrap().len(), 3, "{c}");
    let api = c["api_address"].as_str().unwrap_or_default();
    assert!(
        api.starts_with("https://172.24.") && api.ends_with(":6443"),
        "{c}"
    );
    let masters: Vec<&str> = c["master_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!masters.contains(&&api[8..api.len() - 5]), "{c}");
    let stack_name = format!("ha-{}", &uuid[..12]);
    let res = stack_resources(&stack_name, c["cluster_id"].as_str().unwrap());
    let named = |n: &str| {
        res.iter()
            .filter(|r| r["resource_name"] == n && r["resource_status"] == "CREATE_COMPLETE")
            .count()
    };
    assert_eq!(named("api_lb"), 1, "{res:?}");
    assert_eq!(named("pool_member"), 3, "{res:?}");
    coe(&["cluster", "delete", "ha"]);
    wait_status(url, &uuid, "a-member", &["gone"], STEP_SECS);
    assert!(heat_stacks(&stack_name).is_empty());
    coe(&["cluster", "template", "delete", "ha-t"]);
}

/// The resources of a cluster's stack, nested ones included.
fn stack_resources(stack_name: &str, stack_id: &str) -> Vec<Value> {
    let tok = token("a-member", "project-a");
    let (s, _, res) = http_with(
        "http://127.0.0.1:8004",
        "GET",
        &format!(
            "/v1/{}/stacks/{stack_name}/{stack_id}/resources?nested_depth=3",
            project_a(&tok)
        ),
        &[("X-Auth-Token", &tok)],
        None,
    );
    assert_eq!(s, 200, "{res}");
    let res: Value = serde_json::from_str(&res).unwrap();
    res["resources"].as_array().unwrap().clone()
}

/// A cluster on the template's own network and subnet, without floating
/// IPs, with a Cinder volume per node: Heat makes no network, subnet,
/// router or floating IP, and the API address is the master's private one.
fn on_a_fixed_network(url: &str) {
    template(
        "fixed-t",
        "kubernetes",
        "fedora-coreos-40",
        &[
            "--fixed-network",
            "private",
            "--fixed-subnet",
            "private-subnet",
            "--floating-ip-disabled",
            "--docker-volume-size",
            "3",
            "--volume-driver",
            "cinder",
            "--http-proxy",
            "http://proxy.example:3128",
            "--https-proxy",
            "http://proxy.example:3129",
            "--no-proxy",
            "10.0.0.0/8",
            "--insecure-registry",
            "registry.example:5000",
        ],
    );
    coe(&[
        "cluster",
        "create",
        "fixed",
        "--cluster-template",
        "fixed-t",
        "--node-count",
        "1",
    ]);
    let c = settled(url, "fixed", "CREATE");
    let uuid = c["uuid"].as_str().unwrap().to_string();
    let api = c["api_address"].as_str().unwrap_or_default();
    assert!(
        api.starts_with("https://10.0.") && api.ends_with(":6443"),
        "{c}"
    );
    for a in c["master_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .chain(c["node_addresses"].as_array().unwrap())
    {
        assert!(a.as_str().unwrap().starts_with("10.0."), "{c}");
    }
    let stack_name = format!("fixed-{}", &uuid[..12]);
    let stack_id = c["cluster_id"].as_str().unwrap();
    // What the nodes' installer is told comes from the template.
    let p = stack_parameters(&stack_name, stack_id);
    for (k, v) in [
        ("fixed_network", "private"),
        ("fixed_subnet", "private-subnet"),
        ("http_proxy", "http://proxy.example:3128"),
        ("https_proxy", "http://proxy.example:3129"),
        ("no_proxy", "10.0.0.0/8"),
        ("insecure_registry_url", "registry.example:5000"),
        ("floating_ip_enabled", "False"),
    ] {
        assert_eq!(p[k], v, "{k}: {p}");
    }
    let res = stack_resources(&stack_name, stack_id);
    let count = |parent: Option<&str>, name: &str| {
        res.iter()
            .filter(|r| r["resource_name"] == name)
            .filter(|r| parent.is_none_or(|p| r["parent_resource"] == p))
            .count()
    };
    // The nested network stack made nothing of its own.
    for made in ["network", "subnet", "router", "router_interface"] {
        assert_eq!(count(Some("network"), made), 0, "{made}: {res:?}");
    }
    assert_eq!(count(None, "floating_ip"), 0, "{res:?}");
    // Each node (one master, one worker) has its port and its volume.
    assert_eq!(count(None, "port"), 2, "{res:?}");
    assert_eq!(count(None, "volume"), 2, "{res:?}");
    // The cluster's trustee exists while the cluster does ...
    let trustee = format!("{uuid}_{}", project_a(&token("a-member", "project-a")));
    let trustees = || kget(&admin_token(), &format!("/v3/users?name={trustee}"))["users"].clone();
    assert_eq!(trustees().as_array().unwrap().len(), 1, "{trustee}");
    coe(&["cluster", "delete", "fixed"]);
    wait_status(url, &uuid, "a-member", &["gone"], STEP_SECS);
    assert!(heat_stacks(&stack_name).is_empty());
    // ... and goes with it, after its stack.
    assert_eq!(trustees(), json!([]), "{trustee}");
    coe(&["cluster", "template", "delete", "fixed-t"]);
}

#[test]
fn every_coe_lives_its_whole_life_in_heat() {
    keystone(&["start"]);
    heat_start();
    let dir = tempdir("heat-coes");
    let _cloud = cloud_double(&dir);
    glance_with_image(&token("a-member", "project-a"));
    let conf = heat_conf(&dir, "");
    let server = all_in_one(&dir, &conf);
    let url = server.url.clone();
    keystone(&["endpoint", &format!("{url}/v1")]);
    for case in &CASES {
        template(&format!("fail-{}", case.name), case.coe, case.image, &[]);
    }
    // The COEs side by side, as a cloud's users would.
    let started = Instant::now();
    std::thread::scope(|s| {
        let mut runs = Vec::new();
        for case in &CASES {
            let url = url.as_str();
            runs.push((case.name.to_string(), s.spawn(move || lifecycle(url, case))));
            runs.push((
                format!("fail-me-{}", case.name),
                s.spawn(move || failing_node(url, case)),
            ));
        }
        runs.push((
            "ha".to_string(),
            s.spawn(|| masters_behind_a_load_balancer(url.as_str())),
        ));
        runs.push((
            "fixed".to_string(),
            s.spawn(|| on_a_fixed_network(url.as_str())),
        ));
        let failed: Vec<String> = runs
            .into_iter()
            .filter_map(|(name, r)| r.join().err().map(|_| name))
            .collect();
        assert!(failed.is_empty(), "failed: {failed:?} (see above)");
    });
    eprintln!(
        "every COE's lifecycle took {} s",
        started.elapsed().as_secs()
    );
    drop(server);
    std::fs::remove_dir_all(dir).ok();
}

/// Every driver's templates pass Heat's own validation: each COE, each OS.
#[test]
fn templates_pass_heat_validation() {
    keystone(&["start"]);
    heat_start();
    let tok = token("a-member", "project-a");
    let project = project_a(&tok);
    let env = [fake_cloud_env().display().to_string()];
    let validate = |body: &Value| {
        let (s, _, out) = http_with(
            "http://127.0.0.1:8004",
            "POST",
            &format!("/v1/{project}/validate"),
            &[("X-Auth-Token", &tok)],
            Some(&body.to_string()),
        );
        (s, out)
    };
    use magnum_heat::{Coe, Os};
    for (coe, os) in [
        (Coe::Kubernetes, Os::FedoraCoreos),
        (Coe::Kubernetes, Os::Ubuntu),
        (Coe::Swarm, Os::Ubuntu),
        (Coe::Mesos, Os::Ubuntu),
    ] {
        let bodies = magnum_heat::validation_bodies(coe, os, &env).unwrap();
        assert_eq!(bodies.len(), 2);
        for (top, body) in bodies {
            let (s, out) = validate(&body);
            assert_eq!(s, 200, "{coe:?} {os:?} {top}: {out}");
            let v: Value = serde_json::from_str(&out).unwrap();
            assert!(v["Parameters"]["coe_version"].is_object(), "{out}");
            assert!(v["Parameters"]["coe_settings"].is_object(), "{out}");
            assert_eq!(
                v["Parameters"]["trustee_password"]["NoEcho"],
                json!("true"),
                "{out}"
            );
        }
    }
    // Heat looks into the nested templates: without the COE's security
    // groups the bundle is refused (so the check above can fail).
    let (_, mut body) = magnum_heat::validation_bodies(Coe::Swarm, Os::Ubuntu, &env)
        .unwrap()
        .remove(0);
    body["files"]
        .as_object_mut()
        .unwrap()
        .remove("secgroups.yaml");
    let (s, out) = validate(&body);
    assert_eq!(s, 400, "{out}");
}

/// Every COE's node installer (what the boot configuration writes and
/// runs) is valid bash that shellcheck finds no warning in.
#[test]
fn node_installers_pass_shellcheck() {
    use magnum_heat::Coe;
    let dir = tempdir("installers");
    for coe in [Coe::Kubernetes, Coe::Swarm, Coe::Mesos] {
        let path = dir.join(format!("{coe:?}.sh"));
        std::fs::write(&path, magnum_heat::installer(coe)).unwrap();
        let out = run(std::process::Command::new("bash").arg("-n").arg(&path));
        assert!(out.status.success(), "{coe:?}: {}", text(&out));
        let out = run(std::process::Command::new(venv().join("bin/shellcheck"))
            .args(["--shell=bash", "--severity=warning"])
            .arg(&path));
        assert!(out.status.success(), "{coe:?}: {}", text(&out));
    }
    // shellcheck does find what it should.
    let bad = dir.join("bad.sh");
    std::fs::write(
        &bad,
        "#!/bin/bash
x=(a,b)
echo \"${x[@]}\"
",
    )
    .unwrap();
    let out = run(std::process::Command::new(venv().join("bin/shellcheck"))
        .args(["--shell=bash", "--severity=warning"])
        .arg(&bad));
    assert!(!out.status.success(), "{}", text(&out));
    std::fs::remove_dir_all(dir).ok();
}
