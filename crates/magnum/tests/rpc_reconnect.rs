//! magnum-rpc rides out the loss of its broker: client and server notice
//! it, calls fail fast meanwhile, and both reconnect by themselves and
//! re-declare what they serve, so the topic answers again. The broker is
//! taken away through a TCP relay this test controls (every connection
//! closed, new ones refused), and the topic's queues are deleted while it
//! is away, as a broker restart loses them. Then, for a moment, the broker
//! sits behind a black hole (connections accepted, never answered) before
//! it is back: the attempt caught there must give up by itself, or the
//! link is never retried. The shared RabbitMQ itself is
//! never restarted: Heat and the other tests' conductors use it, and a
//! restart loses their in-flight messages (it left Heat stacks stuck in
//! DELETE_IN_PROGRESS, and Heat's nested-stack calls timed out, while
//! other tests ran).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnum_rpc::{Handler, HandlerFuture, Rpc, Target};
use serde_json::{json, Map, Value};
use support::relay::Relay;

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

/// Delete a queue of the broker, as its restart would.
fn delete_queue(name: &str) {
    let out = Command::new("rabbitmqctl")
        .args(["delete_queue", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rabbitmqctl delete_queue {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// magnum_rpc's own log on the test's output (shown when it fails): what
/// each reconnection attempt met.
fn log_rpc() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let layer = tracing_subscriber::fmt::layer().with_test_writer();
    let only = Targets::new().with_target("magnum_rpc", tracing::Level::DEBUG);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(only)
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_losing_the_broker() {
    log_rpc();
    let topic = format!("magnum-reconnect-{}", std::process::id());
    let relay = Relay::start("127.0.0.1:5672");
    let url = format!("rabbit://guest:guest@127.0.0.1:{}/", relay.port);
    let retry = Duration::from_millis(200);
    let server = Rpc::connect_with(&url, "magnum", retry).await.unwrap();
    server.serve(&topic, "h1", Arc::new(Echo)).await.unwrap();
    let client = Rpc::connect_with(&url, "magnum", retry).await.unwrap();
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

    relay.down();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.connected().await || server.connected().await {
        assert!(
            Instant::now() < deadline,
            "the loss of the broker went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(call(2).await.is_err(), "calls fail while the bus is down");
    let queues = [topic.clone(), format!("{topic}.h1")];
    tokio::task::spawn_blocking(move || queues.iter().for_each(|q| delete_queue(q)))
        .await
        .unwrap();
    // Reconnection attempts now reach a broker that never answers.
    relay.stall();
    tokio::time::sleep(retry * 5).await;
    relay.up();

    // Both sides come back and the topic is served again, once their
    // stalled attempts have given up (after 10 s).
    let deadline = Instant::now() + Duration::from_secs(40);
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
