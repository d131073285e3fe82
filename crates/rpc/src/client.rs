//! How the API reaches conductors: one interface, two transports. Over the
//! bus ([`BusClient`]) requests are oslo.messaging messages to the
//! conductor topic; in one process ([`LocalClient`], `all-in-one`) they go
//! straight to the same [`Handler`] a conductor serves, with the same
//! arguments, so both paths run the same code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::amqp::{Handler, Rpc, RpcError, Target};

/// What a client request returns.
pub type ClientFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, RpcError>> + Send + 'a>>;

/// Sends requests to conductors.
pub trait Client: Send + Sync {
    /// Send `method` without waiting for it to run.
    fn cast<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> ClientFuture<'a, ()>;
    /// Run `method` on a conductor and wait for its result.
    fn call<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> ClientFuture<'a, Value>;
}

/// Conductors in this process.
#[derive(Clone)]
pub struct LocalClient {
    handler: Arc<dyn Handler>,
}

impl LocalClient {
    pub fn new(handler: Arc<dyn Handler>) -> Self {
        LocalClient { handler }
    }
}

impl Client for LocalClient {
    fn cast<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> ClientFuture<'a, ()> {
        let handler = self.handler.clone();
        let method = method.to_string();
        Box::pin(async move {
            tokio::spawn(async move {
                if let Err(e) = handler.handle(context, method.clone(), args).await {
                    tracing::warn!("{method} failed: {}: {}", e.class, e.message);
                }
            });
            Ok(())
        })
    }

    fn call<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> ClientFuture<'a, Value> {
        Box::pin(async move {
            self.handler
                .handle(context, method.to_string(), args)
                .await
                .map_err(|e| RpcError::Remote(Box::new(e)))
        })
    }
}

/// Conductors on the bus, reached through their topic.
#[derive(Clone)]
pub struct BusClient {
    rpc: Rpc,
    target: Target,
    timeout: Duration,
}

impl BusClient {
    pub fn new(rpc: Rpc, topic: &str, timeout: Duration) -> Self {
        BusClient {
            rpc,
            target: Target {
                topic: topic.to_string(),
                ..Default::default()
            },
            timeout,
        }
    }
}

impl Client for BusClient {
    fn cast<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> ClientFuture<'a, ()> {
        Box::pin(self.rpc.cast(&self.target, method, args, context))
    }

    fn call<'a>(
        &'a self,
        method: &'a str,
        args: Map<String, Value>,
        context: Map<String, Value>,
    ) -> ClientFuture<'a, Value> {
        Box::pin(
            self.rpc
                .call(&self.target, method, args, context, self.timeout),
        )
    }
}
