//! Barbican's key-manager API (v1): secrets and certificate containers,
//! as upstream's barbican cert manager uses them.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::{status_error, OsError, Selector, Session};

const SERVICE: &str = "Barbican";

/// A Barbican client acting as one session.
#[derive(Debug, Clone)]
pub struct Barbican {
    session: Arc<Session>,
    selector: Selector,
}

/// The last path segment of a secret or container reference.
pub fn uuid_of(reference: &str) -> &str {
    reference
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(reference)
}

fn unreachable(e: impl std::fmt::Display) -> OsError {
    OsError::Unreachable {
        service: SERVICE.into(),
        reason: e.to_string(),
    }
}

impl Barbican {
    pub fn new(session: Arc<Session>, selector: Selector) -> Barbican {
        Barbican { session, selector }
    }

    async fn base(&self) -> Result<String, OsError> {
        let url = self.selector.url(&self.session).await?;
        Ok(if url.ends_with("/v1") {
            url
        } else {
            format!("{url}/v1")
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, OsError> {
        let url = format!("{}/{path}", self.base().await?);
        let resp = self
            .session
            .send(SERVICE, |http, token| {
                http.post(&url).header("X-Auth-Token", token).json(&body)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(SERVICE, resp).await);
        }
        resp.json().await.map_err(unreachable)
    }

    async fn delete(&self, path: &str) -> Result<(), OsError> {
        let url = format!("{}/{path}", self.base().await?);
        let resp = self
            .session
            .send(SERVICE, |http, token| {
                http.delete(&url).header("X-Auth-Token", token)
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(status_error(SERVICE, resp).await)
        }
    }

    /// Store a text secret; its reference.
    pub async fn create_secret(&self, name: &str, payload: &str) -> Result<String, OsError> {
        let v = self
            .post(
                "secrets",
                json!({"name": name, "payload": payload, "payload_content_type": "text/plain"}),
            )
            .await?;
        v["secret_ref"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| unreachable("no secret_ref in its answer"))
    }

    /// A secret's payload.
    pub async fn secret_payload(&self, reference: &str) -> Result<String, OsError> {
        let url = format!(
            "{}/secrets/{}/payload",
            self.base().await?,
            uuid_of(reference)
        );
        let resp = self
            .session
            .send(SERVICE, |http, token| {
                http.get(&url)
                    .header("X-Auth-Token", token)
                    .header("Accept", "text/plain")
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(SERVICE, resp).await);
        }
        resp.text().await.map_err(unreachable)
    }

    pub async fn delete_secret(&self, reference: &str) -> Result<(), OsError> {
        self.delete(&format!("secrets/{}", uuid_of(reference)))
            .await
    }

    /// Make a container of `kind` ("certificate") holding named secrets.
    pub async fn create_container(
        &self,
        name: &str,
        kind: &str,
        secrets: &[(&str, String)],
    ) -> Result<String, OsError> {
        let refs: Vec<Value> = secrets
            .iter()
            .map(|(n, r)| json!({"name": n, "secret_ref": r}))
            .collect();
        let v = self
            .post(
                "containers",
                json!({"name": name, "type": kind, "secret_refs": refs}),
            )
            .await?;
        v["container_ref"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| unreachable("no container_ref in its answer"))
    }

    /// A container's body (`type`, `secret_refs`, …).
    pub async fn container(&self, reference: &str) -> Result<Value, OsError> {
        let url = format!("{}/containers/{}", self.base().await?, uuid_of(reference));
        let resp = self
            .session
            .send(SERVICE, |http, token| {
                http.get(&url).header("X-Auth-Token", token)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(SERVICE, resp).await);
        }
        resp.json().await.map_err(unreachable)
    }

    pub async fn delete_container(&self, reference: &str) -> Result<(), OsError> {
        self.delete(&format!("containers/{}", uuid_of(reference)))
            .await
    }
}
