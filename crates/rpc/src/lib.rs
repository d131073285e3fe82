//! RPC between Magnum's API and its conductors, spoken in oslo.messaging's
//! rabbit wire format so that upstream's Python services and ours can call
//! each other over the same RabbitMQ.
//!
//! [`envelope`] is the message format; [`amqp`] the broker topology (the
//! `control_exchange` topic exchange, the `<topic>` and `<topic>.<host>`
//! queues, the `<topic>_fanout` exchange, `reply_<id>` queues) with a client
//! that calls and casts and a server that dispatches to a [`amqp::Handler`].

pub mod amqp;
pub mod client;
pub mod envelope;

pub use amqp::{parse_transport_url, Handler, HandlerFuture, Rpc, RpcError, Target};
pub use client::{BusClient, Client, ClientFuture, LocalClient};
pub use envelope::{RemoteError, Reply, Request};
