//! magnum-rpc rides out a RabbitMQ restart: client and server reconnect by
//! themselves and the served topic answers again. This stops and starts the
//! local broker's application (`rabbitmqctl stop_app` / `start_app`), so it
//! lives in a test binary of its own; a guard restarts the broker even when
//! the test fails.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnum_rpc::{Handler, HandlerFuture, Rpc, Target};
use serde_json::{json, Map, Value};

const URL: &str = "rabbit://guest:guest@127.0.0.1:5672/";

struct Echo;

impl Handler for Echo {
    fn handle(
        &self,
        _: Map<String, Value>,
        method: String,
        args: Map<String, Value>,
    ) -> HandlerFuture {
        Box::pin(async move { Ok(json!({"method": method, "args": args})) })
    }
}

fn rabbitmqctl(action: &str) {
    let out = Command::new("rabbitmqctl").arg(action).output().unwrap();
    assert!(
        out.status.success(),
        "rabbitmqctl {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the broker again however the test ends.
struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_broker_restart() {
    let topic = format!("magnum-reconnect-{}", std::process::id());
    let retry = Duration::from_millis(200);
    let server = Rpc::connect_with(URL, "magnum", retry).await.unwrap();
    server.serve(&topic, "h1", Arc::new(Echo)).await.unwrap();
    let client = Rpc::connect_with(URL, "magnum", retry).await.unwrap();
    let target = Target {
        topic: topic.clone(),
        ..Default::default()
    };
    let call = |n: i64| {
        let client = client.clone();
        let target = target.clone();
        async move {
            client
                .call(
                    &target,
                    "ping",
                    json!({"n": n}).as_object().cloned().unwrap(),
                    Map::new(),
                    Duration::from_secs(3),
                )
                .await
        }
    };
    assert_eq!(call(1).await.unwrap()["args"]["n"], 1);

    let guard = BrokerGuard;
    tokio::task::spawn_blocking(|| rabbitmqctl("stop_app"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.connected().await || server.connected().await {
        assert!(
            Instant::now() < deadline,
            "the loss of the broker went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(call(2).await.is_err(), "calls fail while the bus is down");
    tokio::task::spawn_blocking(|| rabbitmqctl("start_app"))
        .await
        .unwrap();
    drop(guard);

    // Both sides come back and the topic is served again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match call(3).await {
            Ok(v) => break v,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no recovery after the broker came back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    assert_eq!(answer["args"]["n"], 3);
    assert!(client.connected().await && server.connected().await);
}
