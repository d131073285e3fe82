//! The serving side: the [`Handler`] a served topic dispatches to, and its
//! queues (`<topic>`, `<topic>.<host>`, and a transient queue on the
//! `<topic>_fanout` exchange), each consumed with requests acknowledged on
//! receipt and answered through the default exchange to their `reply_<id>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};
use serde_json::{Map, Value};

use super::{properties, transient_args, RpcError};
use crate::envelope::{new_id, RemoteError, Reply, Request};

/// The outcome of handling one request.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RemoteError>> + Send>>;

/// What a server does with the requests it receives.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        context: Map<String, Value>,
        method: String,
        args: Map<String, Value>,
    ) -> HandlerFuture;
}

/// A topic this process serves, re-declared after every reconnection.
#[derive(Clone)]
pub(super) struct Served {
    pub(super) topic: String,
    pub(super) host: String,
    pub(super) handler: Arc<dyn Handler>,
}

/// Declare and consume the queues of one served topic.
pub(super) async fn declare_server(
    ch: &Channel,
    exchange: &str,
    s: &Served,
) -> Result<(), RpcError> {
    let topic = s.topic.as_str();
    let fanout_exchange = format!("{topic}_fanout");
    ch.exchange_declare(
        fanout_exchange.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let direct = format!("{topic}.{}", s.host);
    let fanout_q = format!("{topic}_fanout_{}", new_id());
    let queues = [
        (
            topic.to_string(),
            exchange.to_string(),
            topic.to_string(),
            FieldTable::default(),
        ),
        (
            direct.clone(),
            exchange.to_string(),
            direct,
            FieldTable::default(),
        ),
        (
            fanout_q,
            fanout_exchange,
            topic.to_string(),
            transient_args(),
        ),
    ];
    for (queue, exchange, key, args) in queues {
        ch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), args)
            .await?;
        ch.queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let channel = ch.clone();
        let handler = s.handler.clone();
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let Ok(delivery) = delivery else { break };
                // Acknowledged on receipt, as oslo's RPC servers do.
                let _ = delivery.ack(BasicAckOptions::default()).await;
                let req = match Request::decode(&delivery.data) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("malformed request dropped: {e}");
                        continue;
                    }
                };
                let channel = channel.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let outcome = handler.handle(req.context, req.method, req.args).await;
                    let (Some(msg_id), Some(reply_q)) = (req.msg_id, req.reply_q) else {
                        return;
                    };
                    let reply = match outcome {
                        Ok(result) => Reply {
                            msg_id,
                            result,
                            failure: None,
                            ending: true,
                        },
                        Err(f) => Reply {
                            msg_id,
                            result: Value::Null,
                            failure: Some(f),
                            ending: true,
                        },
                    };
                    if let Err(e) = channel
                        .basic_publish(
                            "".into(),
                            reply_q.as_str().into(),
                            BasicPublishOptions::default(),
                            &reply.encode(),
                            properties(None),
                        )
                        .await
                    {
                        tracing::warn!("reply to {reply_q} failed: {e}");
                    }
                });
            }
        });
    }
    Ok(())
}
