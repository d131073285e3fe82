//! The CADF notifications upstream emits about cluster operations:
//! `magnum.cluster.<create|update|delete>` with a CADF activity event whose
//! outcome is `pending`, `success` or `failure` (the last at `ERROR`
//! priority), published by `container-infra.<host>` on
//! `<topic>.<priority>` when `[oslo_messaging_notifications] driver` names
//! `messaging` or `messagingv2`; `log` writes them to the log instead.

use magnum_core::config::opts;
use magnum_core::config::Config;
use magnum_core::objects::Cluster;
use magnum_core::RequestContext;
use magnum_rpc::Rpc;
use serde_json::{json, Map, Value};

/// A CADF outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Success,
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Clone)]
enum Sink {
    None,
    Log,
    Bus { rpc: Rpc, topics: Vec<String> },
}

/// Where notifications go.
#[derive(Clone)]
pub struct Notifier {
    sink: Sink,
    publisher_id: String,
}

impl Notifier {
    /// Notifications off.
    pub fn none() -> Self {
        Notifier {
            sink: Sink::None,
            publisher_id: String::new(),
        }
    }

    /// The notifier `[oslo_messaging_notifications]` asks for; `rpc` is the
    /// bus to publish on (needed by the messaging drivers).
    pub fn from_conf(conf: &Config, host: &str, rpc: Option<Rpc>) -> Self {
        let drivers = conf.get(opts::oslo_messaging_notifications::DRIVER);
        let publisher_id = format!("container-infra.{host}");
        let wants = |names: &[&str]| drivers.iter().any(|d| names.contains(&d.as_str()));
        let sink = if wants(&["messaging", "messagingv2"]) {
            match rpc {
                Some(rpc) => Sink::Bus {
                    rpc,
                    topics: conf.get(opts::oslo_messaging_notifications::TOPICS),
                },
                None => {
                    tracing::warn!(
                        "notifications need a bus: set [DEFAULT] transport_url or \
                         [oslo_messaging_notifications] transport_url; logging them instead"
                    );
                    Sink::Log
                }
            }
        } else if wants(&["log"]) {
            Sink::Log
        } else {
            Sink::None
        };
        Notifier { sink, publisher_id }
    }

    /// Whether notifications go anywhere.
    pub fn enabled(&self) -> bool {
        !matches!(self.sink, Sink::None)
    }

    /// Tell about an operation on `cluster`. Never fails the operation:
    /// a notification that cannot be sent is logged.
    pub async fn cluster(
        &self,
        ctx: &RequestContext,
        action: &str,
        outcome: Outcome,
        cluster: &Cluster,
    ) {
        if !self.enabled() {
            return;
        }
        let event_type = format!("magnum.cluster.{action}");
        let priority = if outcome == Outcome::Failure {
            "ERROR"
        } else {
            "INFO"
        };
        let payload = cadf_event(ctx, action, outcome, cluster);
        match &self.sink {
            Sink::None => {}
            Sink::Log => tracing::info!(
                event_type = event_type.as_str(),
                priority,
                "notification {}",
                payload
            ),
            Sink::Bus { rpc, topics } => {
                let now = chrono::Utc::now()
                    .naive_utc()
                    .format("%Y-%m-%d %H:%M:%S%.6f")
                    .to_string();
                let body = magnum_rpc::envelope::encode_notification(
                    &self.publisher_id,
                    &event_type,
                    priority,
                    payload,
                    &ctx.to_wire(),
                    &now,
                );
                for topic in topics {
                    if let Err(e) = rpc.notify(topic, priority, &body).await {
                        tracing::warn!("cannot send {event_type} notification: {e}");
                    }
                }
            }
        }
    }
}

fn ts(t: &Option<chrono::NaiveDateTime>) -> Value {
    match t {
        Some(t) => json!(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
        None => Value::Null,
    }
}

/// The CADF activity event upstream builds (pycadf's `as_dict()`).
pub fn cadf_event(ctx: &RequestContext, action: &str, outcome: Outcome, c: &Cluster) -> Value {
    let mut initiator = Map::new();
    initiator.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    initiator.insert("typeURI".into(), json!("service/security/account/user"));
    for (k, v) in [
        ("user_id", &ctx.user_id),
        ("project_id", &ctx.project_id),
        ("domain_id", &ctx.domain_id),
    ] {
        if let Some(v) = v {
            initiator.insert(k.into(), json!(v));
        }
    }
    let content = json!({
        "status": c.status,
        "status_reason": c.status_reason,
        "project_id": c.project_id,
        "created_at": ts(&c.created_at),
        "updated_at": ts(&c.updated_at),
        "cluster_template_id": c.cluster_template_id,
        "keypair": c.keypair,
        // Upstream's key has the stray colon.
        "docker_volume_size:": c.docker_volume_size,
        "labels": c.labels,
        "master_flavor_id": c.master_flavor_id,
        "flavor_id": c.flavor_id,
        "stack_id": c.stack_id,
        "health_status": c.health_status,
        "create_timeout": c.create_timeout,
        "api_address": c.api_address,
        "discovery_url": c.discovery_url,
    });
    json!({
        "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
        "eventType": "activity",
        "id": uuid::Uuid::new_v4().to_string(),
        "eventTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+0000").to_string(),
        "action": action,
        "outcome": outcome.as_str(),
        "observer": {
            "id": uuid::Uuid::new_v4().to_string(),
            "typeURI": "service/magnum/cluster",
        },
        "initiator": Value::Object(initiator),
        "target": {
            "id": c.uuid,
            "typeURI": "service/magnum/cluster",
            "name": c.name,
            "attachments": [{
                "typeURI": "service/magnum/cluster",
                "content": content,
                "name": "cluster_data",
            }],
        },
    })
}
