//! `magnum conductor` on RabbitMQ answers upstream Magnum's own conductor
//! clients (`magnum.conductor.api.ListenerAPI` / `API` from PyPI magnum).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;

use serde_json::Value;
use support::*;

#[test]
fn upstream_clients_reach_our_conductor() {
    let dir = tempdir("conductor-rpc");
    let topic = format!("magnum-conductor-test-{}", std::process::id());
    let conf = write_conf(
        &dir,
        &format!(
            "[DEFAULT]\nhost = cond-1\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\nreport_interval = 1\n\
             [database]\nconnection = sqlite:///{}/magnum.sqlite\n[conductor]\ntopic = {topic}\n",
            dir.display()
        ),
    );
    let conf = conf.to_str().unwrap();
    let out = run(Command::new(MAGNUM).args(["--config-file", conf, "db-manage", "upgrade"]));
    assert!(out.status.success(), "{}", text(&out));
    let conductor = start_until(
        &["--config-file", conf, "conductor"],
        "conductor serving RPC topic",
    );

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/conductor_peer.py");
    let out = run(Command::new(venv().join("bin/python")).arg(script).args([
        "rabbit://guest:guest@127.0.0.1:5672/",
        &topic,
        "cond-1",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ping"], true, "{stdout}");
    // Operations not built yet fail clearly instead of hanging.
    // builtins are allowed remote exceptions: upstream re-raises its own type.
    assert_eq!(lines[1]["delete"], "NotImplementedError", "{stdout}");
    assert!(
        lines[1]["text"]
            .as_str()
            .unwrap()
            .contains("not available in this conductor yet"),
        "{stdout}"
    );
    drop(conductor);
    std::fs::remove_dir_all(dir).ok();
}
