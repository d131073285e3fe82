//! The conductor's RPC endpoints, under upstream's method names so that
//! upstream's `magnum.conductor.api` clients can call them.
//!
//! Implemented so far: `ping_conductor` (upstream's `ListenerAPI`). The
//! cluster, node group, certificate, credential and federation operations
//! are recognised and answered with a clear "not available yet" failure
//! until they land; anything else gets oslo.messaging's `NoSuchMethod`.

use magnum_rpc::{Handler, HandlerFuture, RemoteError};
use serde_json::{Map, Value};

/// The methods upstream's conductor serves.
pub const UPSTREAM_METHODS: &[&str] = &[
    "cluster_create",
    "cluster_delete",
    "cluster_update",
    "cluster_resize",
    "cluster_upgrade",
    "nodegroup_create",
    "nodegroup_update",
    "nodegroup_delete",
    "sign_certificate",
    "get_ca_certificate",
    "rotate_ca_certificate",
    "credential_rotate",
    "federation_create",
    "federation_update",
    "federation_delete",
    "object_class_action_versions",
    "object_action",
    "object_backport_versions",
    "ping_conductor",
];

/// The conductor's endpoints.
#[derive(Debug, Default, Clone)]
pub struct Conductor;

fn failure(class: &str, module: &str, message: String) -> RemoteError {
    RemoteError {
        class: class.into(),
        module: module.into(),
        message,
        ..Default::default()
    }
}

impl Handler for Conductor {
    fn handle(
        &self,
        _context: Map<String, Value>,
        method: String,
        _args: Map<String, Value>,
    ) -> HandlerFuture {
        Box::pin(async move {
            match method.as_str() {
                // Upstream's listener: "I am alive".
                "ping_conductor" => Ok(Value::Bool(true)),
                m if UPSTREAM_METHODS.contains(&m) => {
                    tracing::warn!("conductor method {m} called; not available yet");
                    Err(failure(
                        "NotImplementedError",
                        "builtins",
                        format!("{m} is not available in this conductor yet"),
                    ))
                }
                m => Err(failure(
                    "NoSuchMethod",
                    "oslo_messaging.rpc.dispatcher",
                    format!("Endpoint does not support RPC method {m}"),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_ping_and_refuses_the_rest_clearly() {
        let c = Conductor;
        assert_eq!(
            c.handle(Map::new(), "ping_conductor".into(), Map::new())
                .await
                .unwrap(),
            Value::Bool(true)
        );
        let e = c
            .handle(Map::new(), "cluster_create".into(), Map::new())
            .await
            .unwrap_err();
        assert_eq!(e.class, "NotImplementedError");
        let e = c
            .handle(Map::new(), "bogus".into(), Map::new())
            .await
            .unwrap_err();
        assert_eq!(e.class, "NoSuchMethod");
    }
}
