//! magnum-rpc against oslo.messaging itself (PyPI, from the peers
//! virtualenv) over the real RabbitMQ at 127.0.0.1:5672: our client calls an
//! oslo RPC server, and oslo's client calls our server.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use magnum_rpc::{Handler, HandlerFuture, RemoteError, Rpc, RpcError, Target};
use serde_json::{json, Map, Value};
use support::venv;

const URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";

fn peer() -> Command {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/oslo_rpc_peer.py");
    let mut cmd = Command::new(venv().join("bin/python"));
    cmd.arg(script);
    cmd
}

fn topic() -> String {
    format!("magnum-test-{}", uuid_hex())
}

fn uuid_hex() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{:x}{:x}", std::process::id(), t.as_nanos())
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_an_oslo_server() {
    let topic = topic();
    let mut server = peer()
        .args(["server", URL, &topic, "pyhost"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let ready = lines.next();
    if !matches!(&ready, Some(Ok(l)) if l == "ready") {
        let _ = server.kill();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut err).ok();
        panic!("oslo server did not start: {ready:?}\n{err}");
    }
    let rpc = Rpc::connect(URL, "magnum").await.unwrap();
    let target = Target {
        topic: topic.clone(),
        ..Default::default()
    };
    let ctx = obj(json!({"user_id": "u1", "project_id": "p1", "roles": ["admin"]}));
    let out = rpc
        .call(
            &target,
            "echo",
            obj(json!({"x": 1, "name": "n"})),
            ctx.clone(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(out["args"], json!({"x": 1, "name": "n"}));
    assert_eq!(out["context"]["project_id"], "p1");
    assert_eq!(out["context"]["roles"], json!(["admin"]));

    // The server by name (topic.server), and a failure coming back.
    let direct = Target {
        topic: topic.clone(),
        server: Some("pyhost".into()),
        ..Default::default()
    };
    let out = rpc
        .call(
            &direct,
            "echo",
            Map::new(),
            Map::new(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(out["args"], json!({}));
    match rpc
        .call(
            &target,
            "fail",
            Map::new(),
            Map::new(),
            Duration::from_secs(20),
        )
        .await
    {
        Err(RpcError::Remote(e)) => {
            assert_eq!(e.class, "ValueError");
            assert!(e.message.contains("boom from python"), "{e:?}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    // A call nobody answers times out.
    let nobody = Target {
        topic: format!("{topic}-nobody"),
        ..Default::default()
    };
    let r = rpc
        .call(
            &nobody,
            "echo",
            Map::new(),
            Map::new(),
            Duration::from_millis(500),
        )
        .await;
    assert!(matches!(r, Err(RpcError::Timeout { .. })), "{r:?}");
    let _ = server.kill();
    let _ = server.wait();
}

/// The requests a handler received: (method, args).
type Seen = Arc<Mutex<Vec<(String, Map<String, Value>)>>>;

struct Echo {
    seen: Seen,
}

impl Handler for Echo {
    fn handle(
        &self,
        context: Map<String, Value>,
        method: String,
        args: Map<String, Value>,
    ) -> HandlerFuture {
        self.seen
            .lock()
            .unwrap()
            .push((method.clone(), args.clone()));
        Box::pin(async move {
            match method.as_str() {
                "echo" => Ok(json!({"context": context, "args": args})),
                _ => Err(RemoteError {
                    class: "ClusterNotFound".into(),
                    module: "magnum.common.exception".into(),
                    message: "Cluster x could not be found.".into(),
                    ..Default::default()
                }),
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oslo_client_calls_our_server() {
    let topic = topic();
    let rpc = Rpc::connect(URL, "magnum").await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    rpc.serve(&topic, "rshost", Arc::new(Echo { seen: seen.clone() }))
        .await
        .unwrap();
    let out =
        tokio::task::spawn_blocking(move || peer().args(["client", URL, &topic]).output().unwrap())
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "oslo client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["echo"]["args"], json!({"x": 1, "name": "n"}));
    assert_eq!(lines[0]["echo"]["context"]["user_id"], "u1");
    assert_eq!(lines[1]["fail"], "RemoteError");
    assert!(
        lines[1]["text"]
            .as_str()
            .unwrap()
            .contains("Cluster x could not be found."),
        "{}",
        lines[1]
    );
    // The cast arrives too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|(_, a)| a.get("note") == Some(&json!("cast")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the cast never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
