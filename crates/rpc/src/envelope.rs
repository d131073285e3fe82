//! oslo.messaging's message format.
//!
//! Every AMQP body is a JSON envelope `{"oslo.version": "2.0",
//! "oslo.message": "<JSON text>"}`. A request inside it carries `method`,
//! `args`, optionally `namespace` and `version` (the target's), the caller's
//! request context flattened into `_context_<key>` entries, a `_unique_id`,
//! and for calls `_msg_id`, `_reply_q` and `_timeout`. A reply carries
//! `result`, `failure` (a JSON text describing the remote exception, or
//! null), `ending` and the `_msg_id` it answers.

use serde_json::{json, Map, Value};

/// The envelope version oslo.messaging writes and accepts.
pub const ENVELOPE_VERSION: &str = "2.0";

/// A malformed message.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported envelope version {0}")]
    Version(String),
    #[error("message is missing {0}")]
    Missing(&'static str),
}

/// One RPC request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub method: String,
    pub args: Map<String, Value>,
    pub namespace: Option<String>,
    pub version: Option<String>,
    /// The caller's context, without the `_context_` prefix.
    pub context: Map<String, Value>,
    /// Set for calls (a reply is expected), absent for casts.
    pub msg_id: Option<String>,
    pub reply_q: Option<String>,
    pub timeout: Option<f64>,
    pub unique_id: String,
}

/// An exception raised by the remote side, as oslo serialises it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteError {
    pub class: String,
    pub module: String,
    pub message: String,
    pub tb: Vec<String>,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}: {}", self.module, self.class, self.message)
    }
}

/// One reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub msg_id: String,
    pub result: Value,
    pub failure: Option<RemoteError>,
    pub ending: bool,
}

/// A fresh `_unique_id` / `_msg_id`: a UUID in hex, as oslo makes them.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn wrap(message: &Value) -> Vec<u8> {
    json!({"oslo.version": ENVELOPE_VERSION, "oslo.message": message.to_string()})
        .to_string()
        .into_bytes()
}

fn unwrap(body: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    let outer: Value = serde_json::from_slice(body)?;
    let Value::Object(outer) = outer else {
        return Err(EnvelopeError::Missing("a JSON object"));
    };
    match (outer.get("oslo.version"), outer.get("oslo.message")) {
        (Some(v), Some(Value::String(inner))) => {
            let v = v.as_str().unwrap_or_default();
            // Compatible when the major version matches (oslo's rule).
            if v.split('.').next() != Some("2") {
                return Err(EnvelopeError::Version(v.to_string()));
            }
            match serde_json::from_str(inner)? {
                Value::Object(m) => Ok(m),
                _ => Err(EnvelopeError::Missing("a message object")),
            }
        }
        // A bare message (no envelope) is accepted, as oslo does.
        _ => Ok(outer),
    }
}

/// One notification (oslo.messaging's `messagingv2` driver): the event
/// with the sender's context as `_context_*` keys, in the 2.0 envelope.
pub fn encode_notification(
    publisher_id: &str,
    event_type: &str,
    priority: &str,
    payload: Value,
    context: &Map<String, Value>,
    timestamp: &str,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("message_id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("publisher_id".into(), json!(publisher_id));
    m.insert("event_type".into(), json!(event_type));
    m.insert("priority".into(), json!(priority));
    m.insert("payload".into(), payload);
    m.insert("timestamp".into(), json!(timestamp));
    for (k, v) in context {
        m.insert(format!("_context_{k}"), v.clone());
    }
    m.insert("_unique_id".into(), json!(new_id()));
    wrap(&Value::Object(m))
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("method".into(), json!(self.method));
        m.insert("args".into(), Value::Object(self.args.clone()));
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), json!(ns));
        }
        if let Some(v) = &self.version {
            m.insert("version".into(), json!(v));
        }
        for (k, v) in &self.context {
            m.insert(format!("_context_{k}"), v.clone());
        }
        if let Some(id) = &self.msg_id {
            m.insert("_msg_id".into(), json!(id));
        }
        if let Some(q) = &self.reply_q {
            m.insert("_reply_q".into(), json!(q));
        }
        if self.msg_id.is_some() {
            m.insert("_timeout".into(), json!(self.timeout));
        }
        m.insert("_unique_id".into(), json!(self.unique_id));
        wrap(&Value::Object(m))
    }

    pub fn decode(body: &[u8]) -> Result<Request, EnvelopeError> {
        let mut m = unwrap(body)?;
        let method = match m.remove("method") {
            Some(Value::String(s)) => s,
            _ => return Err(EnvelopeError::Missing("method")),
        };
        let args = match m.remove("args") {
            Some(Value::Object(a)) => a,
            None | Some(Value::Null) => Map::new(),
            _ => return Err(EnvelopeError::Missing("args as an object")),
        };
        let text = |v: Option<Value>| v.and_then(|v| v.as_str().map(str::to_string));
        let mut req = Request {
            method,
            args,
            namespace: text(m.remove("namespace")),
            version: text(m.remove("version")),
            msg_id: text(m.remove("_msg_id")),
            reply_q: text(m.remove("_reply_q")),
            timeout: m.remove("_timeout").and_then(|v| v.as_f64()),
            unique_id: text(m.remove("_unique_id")).unwrap_or_default(),
            context: Map::new(),
        };
        for (k, v) in m {
            if let Some(key) = k.strip_prefix("_context_") {
                req.context.insert(key.to_string(), v);
            }
        }
        Ok(req)
    }
}

impl RemoteError {
    fn to_json_text(&self) -> String {
        json!({
            "class": self.class,
            "module": self.module,
            "message": self.message,
            "tb": self.tb,
            "args": self.args,
            "kwargs": self.kwargs,
        })
        .to_string()
    }

    fn from_json_text(text: &str) -> RemoteError {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        RemoteError {
            class: s("class"),
            module: s("module"),
            message: s("message"),
            tb: v
                .get("tb")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            args: v
                .get("args")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            kwargs: v
                .get("kwargs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        wrap(&json!({
            "result": self.result,
            "failure": self.failure.as_ref().map(RemoteError::to_json_text),
            "ending": self.ending,
            "_msg_id": self.msg_id,
            "_unique_id": new_id(),
        }))
    }

    pub fn decode(body: &[u8]) -> Result<Reply, EnvelopeError> {
        let mut m = unwrap(body)?;
        let msg_id = match m.remove("_msg_id") {
            Some(Value::String(s)) => s,
            _ => return Err(EnvelopeError::Missing("_msg_id")),
        };
        let failure = match m.remove("failure") {
            Some(Value::String(text)) => Some(RemoteError::from_json_text(&text)),
            _ => None,
        };
        Ok(Reply {
            msg_id,
            result: m.remove("result").unwrap_or(Value::Null),
            failure,
            ending: m
                .remove("ending")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_layout() {
        let mut req = Request {
            method: "cluster_create".into(),
            namespace: None,
            version: Some("1.0".into()),
            msg_id: Some(new_id()),
            reply_q: Some("reply_abc".into()),
            timeout: Some(60.0),
            unique_id: new_id(),
            ..Default::default()
        };
        req.args.insert("create_timeout".into(), json!(60));
        req.context.insert("project_id".into(), json!("p"));
        let body = req.encode();
        let outer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["_context_project_id"], "p");
        assert_eq!(inner["_reply_q"], "reply_abc");
        assert_eq!(inner["args"]["create_timeout"], 60);
        assert_eq!(Request::decode(&body).unwrap(), req);
    }

    #[test]
    fn decodes_what_oslo_writes() {
        // As produced by oslo.messaging 18 for a call (captured shape).
        let inner = r#"{"method": "ping", "args": {"x": 1}, "version": "1.0", "_msg_id": "m1", "_reply_q": "reply_q1", "_timeout": null, "_unique_id": "u1", "_context_user_id": "u", "_context_roles": ["admin"]}"#;
        let body = json!({"oslo.version": "2.0", "oslo.message": inner}).to_string();
        let r = Request::decode(body.as_bytes()).unwrap();
        assert_eq!(r.method, "ping");
        assert_eq!(r.context["roles"], json!(["admin"]));
        assert_eq!(r.timeout, None);
        assert!(Request::decode(br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#).is_err());
        assert!(Request::decode(b"not json").is_err());
        assert!(Request::decode(br#"{"args": {}}"#).is_err());
    }

    #[test]
    fn replies_with_failures() {
        let failure = RemoteError {
            class: "ClusterNotFound".into(),
            module: "magnum.common.exception".into(),
            message: "Cluster x could not be found.".into(),
            ..Default::default()
        };
        let reply = Reply {
            msg_id: "m".into(),
            result: Value::Null,
            failure: Some(failure.clone()),
            ending: true,
        };
        let back = Reply::decode(&reply.encode()).unwrap();
        assert_eq!(back, reply);
        let outer: Value = serde_json::from_slice(&reply.encode()).unwrap();
        let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
        assert!(
            inner["failure"].is_string(),
            "oslo sends the failure as JSON text"
        );
    }
}
