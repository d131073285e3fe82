//! Every line logged while serving a request names the request's id (the
//! one its answer carries in `x-openstack-request-id`), and every line an
//! operation's attempt logs names the operation, its method and cluster.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use support::*;

#[test]
fn log_lines_name_their_request_and_operation() {
    let dir = tempdir("spans");
    let conf = write_conf(&dir, "[conductor]\nsync_interval = 1\n[api]\nport = 0\n");
    let server = all_in_one_on_fake_cloud(&dir, &conf);
    let (request, cluster) = template_and_cluster(&server.url);

    let logs = server.logs();
    let line = |what: &str| {
        logs.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} in:\n{logs}"))
    };
    let access = line("POST /v1/clustertemplates 201");
    assert!(
        access.contains(&format!("request{{id={request}}}")),
        "{access}"
    );
    let running = line("running cluster_create");
    assert!(running.contains("operation{id="), "{running}");
    assert!(running.contains("method=cluster_create"), "{running}");
    assert!(running.contains(&format!("cluster={cluster}")), "{running}");
}
