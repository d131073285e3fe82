//! The RabbitMQ side of oslo.messaging's rabbit driver: the connection
//! that reconnects by itself, calls (with `reply_<id>` queues), casts and
//! notifications here; the serving side in [`server`], the transport URL in
//! [`url`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::{Stream, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::envelope::{new_id, RemoteError, Reply, Request};

mod server;
mod url;
use server::{declare_server, Served};
pub use server::{Handler, HandlerFuture};
pub use url::{parse_transport_url, TransportUrl};

/// Lifetime of reply and fanout queues nobody consumes, as oslo's
/// `rabbit_transient_queues_ttl` default (30 minutes).
const TRANSIENT_QUEUE_TTL_MS: i64 = 1_800_000;

/// How long one attempt to reach the broker and declare everything may
/// take. A broker behind a black hole accepts the TCP connection and then
/// never answers the handshake; without a bound, that attempt would wait
/// forever and the link would never be retried.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// RPC failures.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("invalid transport_url: {0}")]
    BadUrl(String),
    #[error("message bus unreachable at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: lapin::Error,
    },
    #[error("message bus error: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("message bus at {0} is unavailable; reconnecting")]
    Unavailable(String),
    #[error("no reply to {method} within {timeout:?}")]
    Timeout { method: String, timeout: Duration },
    #[error("remote error: {0}")]
    Remote(Box<RemoteError>),
}

/// Where a message goes: a topic, and optionally one server of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Target {
    pub topic: String,
    pub server: Option<String>,
    pub namespace: Option<String>,
    pub version: Option<String>,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// What survives reconnections.
struct Inner {
    url: TransportUrl,
    exchange: String,
    reply_q: String,
    retry: Duration,
    waiters: Waiters,
    served: Mutex<Vec<Served>>,
    /// The live connection and channel; `None` while reconnecting.
    link: tokio::sync::RwLock<Option<(Connection, Channel)>>,
    /// Woken when the connection fails.
    broken: tokio::sync::Notify,
}

/// A connection to the bus that calls, casts and serves. It reconnects by
/// itself when the broker goes away, re-declaring its reply queue and every
/// topic it serves; calls made while the bus is down fail fast.
#[derive(Clone)]
pub struct Rpc {
    inner: Arc<Inner>,
}

fn properties(timeout: Option<Duration>) -> BasicProperties {
    let p = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into());
    match timeout {
        Some(t) => p.with_expiration(t.as_millis().to_string().into()),
        None => p,
    }
}

fn transient_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(TRANSIENT_QUEUE_TTL_MS),
    );
    args
}

impl Inner {
    /// Connect to the first reachable broker and declare everything this
    /// process needs: the control exchange, its reply queue and consumer,
    /// and the topics it serves. Each step is bounded by
    /// [`ESTABLISH_TIMEOUT`]; a connection that was opened but could not be
    /// set up is closed, so it neither lingers on the broker nor reports
    /// its loss later as the live link's.
    async fn establish(self: &Arc<Self>) -> Result<(Connection, Channel), RpcError> {
        let timed_out = || RpcError::Unavailable(self.url.display.clone());
        let conn = tokio::time::timeout(ESTABLISH_TIMEOUT, self.open())
            .await
            .map_err(|_| timed_out())??;
        // Listening from before the declarations, so a loss during them is
        // not missed; watched only once the link is in use.
        let events = conn.events_listener();
        let failed = match tokio::time::timeout(ESTABLISH_TIMEOUT, self.declare(&conn)).await {
            Ok(Ok(channel)) => {
                self.watch(events);
                return Ok((conn, channel));
            }
            Ok(Err(e)) => e,
            Err(_) => timed_out(),
        };
        let closing = conn.close(0, "".into());
        let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
        Err(failed)
    }

    /// Wake [`Inner::supervise`] when the live link's connection fails.
    fn watch(
        self: &Arc<Self>,
        mut events: impl Stream<Item = lapin::Event> + Send + Unpin + 'static,
    ) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let lapin::Event::Error(e) = event {
                    tracing::warn!("message bus connection lost: {e}");
                    if let Some(inner) = weak.upgrade() {
                        inner.broken.notify_one();
                    }
                    break;
                }
            }
        });
    }

    /// A connection to the first broker of the URL that accepts one.
    async fn open(&self) -> Result<Connection, RpcError> {
        let mut last = None;
        for uri in &self.url.uris {
            match Connection::connect(uri, ConnectionProperties::default()).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(source) => RpcError::Connect {
                target: self.url.display.clone(),
                source,
            },
            None => RpcError::BadUrl(self.url.display.clone()),
        })
    }

    /// Declare on `conn` what this process needs; the channel it was
    /// declared on.
    async fn declare(&self, conn: &Connection) -> Result<Channel, RpcError> {
        let channel = conn.create_channel().await?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // Our reply queue, on the default exchange as oslo.messaging 18 does.
        channel
            .queue_declare(
                self.reply_q.as_str().into(),
                QueueDeclareOptions::default(),
                transient_args(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                self.reply_q.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let waiters = self.waiters.clone();
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let Ok(delivery) = delivery else { break };
                match Reply::decode(&delivery.data) {
                    Ok(reply) => {
                        let waiter = waiters
                            .lock()
                            .ok()
                            .and_then(|mut m| m.remove(&reply.msg_id));
                        match waiter {
                            Some(tx) => {
                                let _ = tx.send(reply);
                            }
                            None => tracing::debug!("reply to unknown call {}", reply.msg_id),
                        }
                    }
                    Err(e) => tracing::warn!("malformed reply dropped: {e}"),
                }
            }
        });
        let served: Vec<Served> = self.served.lock().map(|s| s.clone()).unwrap_or_default();
        for s in served {
            declare_server(&channel, &self.exchange, &s).await?;
        }
        Ok(channel)
    }

    /// Keep the link up: after a failure, retry every `retry` until the
    /// broker is back, then restore everything declared.
    async fn supervise(self: Arc<Self>) {
        loop {
            self.broken.notified().await;
            *self.link.write().await = None;
            loop {
                tokio::time::sleep(self.retry).await;
                match self.establish().await {
                    Ok(link) => {
                        tracing::info!("message bus reconnected at {}", self.url.display);
                        *self.link.write().await = Some(link);
                        break;
                    }
                    Err(e) => tracing::debug!("message bus still unreachable: {e}"),
                }
            }
        }
    }

    async fn channel(&self) -> Result<Channel, RpcError> {
        match &*self.link.read().await {
            Some((_, ch)) => Ok(ch.clone()),
            None => Err(RpcError::Unavailable(self.url.display.clone())),
        }
    }
}

impl Rpc {
    /// Connect to the first reachable broker of `transport_url`; RPC
    /// topics live in the topic exchange `control_exchange`. Fails when no
    /// broker answers now; later outages are ridden out, retrying every
    /// `retry`.
    pub async fn connect(transport_url: &str, control_exchange: &str) -> Result<Rpc, RpcError> {
        Self::connect_with(transport_url, control_exchange, Duration::from_secs(1)).await
    }

    /// As [`Rpc::connect`], retrying every `retry` after a failure
    /// (`[oslo_messaging_rabbit] rabbit_retry_interval`).
    pub async fn connect_with(
        transport_url: &str,
        control_exchange: &str,
        retry: Duration,
    ) -> Result<Rpc, RpcError> {
        let inner = Arc::new(Inner {
            url: parse_transport_url(transport_url)?,
            exchange: control_exchange.to_string(),
            reply_q: format!("reply_{}", new_id()),
            retry,
            waiters: Arc::new(Mutex::new(HashMap::new())),
            served: Mutex::new(Vec::new()),
            link: tokio::sync::RwLock::new(None),
            broken: tokio::sync::Notify::new(),
        });
        let link = inner.establish().await?;
        *inner.link.write().await = Some(link);
        tokio::spawn(inner.clone().supervise());
        Ok(Rpc { inner })
    }

    /// Whether the bus is connected right now.
    pub async fn connected(&self) -> bool {
        self.inner.link.read().await.is_some()
    }

    fn routing_key(target: &Target) -> String {
        match &target.server {
            Some(s) => format!("{}.{}", target.topic, s),
            None => target.topic.clone(),
        }
    }

    fn request(
        target: &Target,
        method: &str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Request {
        Request {
            method: method.to_string(),
            args,
            namespace: target.namespace.clone(),
            version: target.version.clone(),
            context,
            unique_id: new_id(),
            ..Default::default()
        }
    }

    /// Call `method` on a server of `target` and wait for its result.
    pub async fn call(
        &self,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
        context: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let channel = self.inner.channel().await?;
        let mut req = Self::request(target, method, args, context);
        let msg_id = new_id();
        req.msg_id = Some(msg_id.clone());
        req.reply_q = Some(self.inner.reply_q.clone());
        let (tx, rx) = oneshot::channel();
        let waiters = &self.inner.waiters;
        if let Ok(mut w) = waiters.lock() {
            w.insert(msg_id.clone(), tx);
        }
        let forget = || {
            if let Ok(mut w) = waiters.lock() {
                w.remove(&msg_id);
            }
        };
        let sent = channel
            .basic_publish(
                self.inner.exchange.as_str().into(),
                Self::routing_key(target).as_str().into(),
                BasicPublishOptions::default(),
                &req.encode(),
                properties(Some(timeout)),
            )
            .await;
        if let Err(e) = sent {
            forget();
            return Err(e.into());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => match reply.failure {
                Some(f) => Err(RpcError::Remote(Box::new(f))),
                None => Ok(reply.result),
            },
            _ => {
                forget();
                Err(RpcError::Timeout {
                    method: method.to_string(),
                    timeout,
                })
            }
        }
    }

    /// Send `method` to a server of `target` without waiting.
    pub async fn cast(
        &self,
        target: &Target,
        method: &str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> Result<(), RpcError> {
        let channel = self.inner.channel().await?;
        let req = Self::request(target, method, args, context);
        channel
            .basic_publish(
                self.inner.exchange.as_str().into(),
                Self::routing_key(target).as_str().into(),
                BasicPublishOptions::default(),
                &req.encode(),
                properties(None),
            )
            .await?;
        Ok(())
    }

    /// Publish a notification body on `<topic>.<priority>` of the control
    /// exchange, declaring that queue first as oslo.messaging's notifier
    /// does, so notifications wait for their consumer.
    pub async fn notify(&self, topic: &str, priority: &str, body: &[u8]) -> Result<(), RpcError> {
        let channel = self.inner.channel().await?;
        let key = format!("{topic}.{}", priority.to_lowercase());
        channel
            .queue_declare(
                key.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                key.as_str().into(),
                self.inner.exchange.as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .basic_publish(
                self.inner.exchange.as_str().into(),
                key.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties(None),
            )
            .await?;
        Ok(())
    }

    /// Serve `topic` as `host`: requests to the topic (shared with every
    /// server of it), to `topic.host` (this server only) and to the
    /// topic's fanout reach `handler`; calls get their reply. Kept across
    /// reconnections.
    pub async fn serve(
        &self,
        topic: &str,
        host: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<(), RpcError> {
        let served = Served {
            topic: topic.to_string(),
            host: host.to_string(),
            handler,
        };
        if let Ok(mut s) = self.inner.served.lock() {
            s.push(served.clone());
        }
        let channel = self.inner.channel().await?;
        declare_server(&channel, &self.inner.exchange, &served).await
    }
}
