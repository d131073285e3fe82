//! Heat's orchestration API (v1): stacks, their outputs, resources and
//! events, and template validation.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::{status_error, OsError, Selector, Session};

const SERVICE: &str = "Heat";

/// What a stack is made from.
#[derive(Debug, Clone, Default)]
pub struct StackInput {
    pub template: Value,
    /// Other templates the template and environment refer to, by name.
    pub files: Map<String, Value>,
    pub environment: Value,
    pub parameters: Map<String, Value>,
    pub timeout_mins: Option<i64>,
    pub disable_rollback: bool,
}

impl StackInput {
    fn body(&self) -> Map<String, Value> {
        let mut b = Map::new();
        b.insert("template".into(), self.template.clone());
        b.insert("files".into(), Value::Object(self.files.clone()));
        b.insert("environment".into(), self.environment.clone());
        b.insert("parameters".into(), Value::Object(self.parameters.clone()));
        b.insert("disable_rollback".into(), json!(self.disable_rollback));
        if let Some(t) = self.timeout_mins {
            b.insert("timeout_mins".into(), json!(t));
        }
        b
    }
}

/// A Heat client acting as one session.
#[derive(Debug, Clone)]
pub struct Heat {
    session: Arc<Session>,
    selector: Selector,
}

fn unreachable(e: impl std::fmt::Display) -> OsError {
    OsError::Unreachable {
        service: SERVICE.into(),
        reason: e.to_string(),
    }
}

impl Heat {
    pub fn new(session: Arc<Session>, selector: Selector) -> Heat {
        Heat { session, selector }
    }

    /// The endpoint for the session's project (the catalog's URL usually
    /// ends in `%(tenant_id)s`).
    async fn base(&self) -> Result<String, OsError> {
        let body = self.session.token_body().await?;
        let url = self.selector.find(&body["catalog"])?;
        let project = body["project"]["id"].as_str().unwrap_or_default();
        let url = url
            .replace("%(tenant_id)s", project)
            .replace("%(project_id)s", project)
            .replace("$(tenant_id)s", project)
            .replace("$(project_id)s", project);
        Ok(if url.contains(project) && !project.is_empty() {
            url
        } else {
            format!("{}/{project}", url.trim_end_matches('/'))
        })
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, OsError> {
        let url = format!("{}{path}", self.base().await?);
        self.session
            .send(SERVICE, |http, token| {
                let r = http
                    .request(method.clone(), &url)
                    .header("X-Auth-Token", token)
                    .header("Accept", "application/json");
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            })
            .await
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, OsError> {
        let resp = self.request(method, path, body).await?;
        if !resp.status().is_success() {
            return Err(status_error(SERVICE, resp).await);
        }
        if resp.status().as_u16() == 202 || resp.status().as_u16() == 204 {
            let text = resp.text().await.map_err(unreachable)?;
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        resp.json().await.map_err(unreachable)
    }

    /// Create a stack; its id.
    pub async fn create_stack(&self, name: &str, input: &StackInput) -> Result<String, OsError> {
        let mut body = input.body();
        body.insert("stack_name".into(), json!(name));
        let v = self
            .json(reqwest::Method::POST, "/stacks", Some(&Value::Object(body)))
            .await?;
        v["stack"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| unreachable("no stack id in its answer"))
    }

    /// A stack by name or id (`None` when Heat has none, or only a deleted
    /// one).
    pub async fn stack(&self, name_or_id: &str) -> Result<Option<Value>, OsError> {
        match self
            .json(reqwest::Method::GET, &format!("/stacks/{name_or_id}"), None)
            .await
        {
            Ok(v) => Ok(Some(v["stack"].clone())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replace a stack's template, parameters and environment (`PUT`), or
    /// change only what `input` gives (`PATCH`, existing parameters kept).
    pub async fn update_stack(
        &self,
        id: &str,
        input: &StackInput,
        patch: bool,
    ) -> Result<(), OsError> {
        let mut body = input.body();
        let method = if patch {
            if input.template.is_null() {
                body.remove("template");
                body.insert("existing".into(), json!(true));
            }
            reqwest::Method::PATCH
        } else {
            reqwest::Method::PUT
        };
        let path = format!("/stacks/{}", self.stack_path(id).await?);
        self.json(method, &path, Some(&Value::Object(body)))
            .await
            .map(|_| ())
    }

    /// `name/id` of a stack, as the update and delete paths need.
    async fn stack_path(&self, id: &str) -> Result<String, OsError> {
        let s = self.stack(id).await?.ok_or(OsError::Status {
            service: SERVICE.into(),
            status: 404,
            message: format!("The Stack ({id}) could not be found."),
        })?;
        Ok(format!(
            "{}/{}",
            s["stack_name"].as_str().unwrap_or(id),
            s["id"].as_str().unwrap_or(id)
        ))
    }

    /// Delete a stack (one already gone is fine).
    pub async fn delete_stack(&self, id: &str) -> Result<(), OsError> {
        let path = match self.stack_path(id).await {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .json(reqwest::Method::DELETE, &format!("/stacks/{path}"), None)
            .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// A stack's resources, `nested_depth` levels down.
    pub async fn resources(&self, id: &str, nested_depth: u32) -> Result<Vec<Value>, OsError> {
        let path = self.stack_path(id).await?;
        let v = self
            .json(
                reqwest::Method::GET,
                &format!("/stacks/{path}/resources?nested_depth={nested_depth}"),
                None,
            )
            .await?;
        Ok(v["resources"].as_array().cloned().unwrap_or_default())
    }

    /// A stack's events, oldest first.
    pub async fn events(&self, id: &str) -> Result<Vec<Value>, OsError> {
        let path = self.stack_path(id).await?;
        let v = self
            .json(
                reqwest::Method::GET,
                &format!("/stacks/{path}/events?sort_dir=asc"),
                None,
            )
            .await?;
        Ok(v["events"].as_array().cloned().unwrap_or_default())
    }

    /// Heat's verdict on a template with its files and environment.
    pub async fn validate(&self, input: &StackInput) -> Result<Value, OsError> {
        let mut body = input.body();
        body.remove("disable_rollback");
        body.remove("timeout_mins");
        self.json(
            reqwest::Method::POST,
            "/validate",
            Some(&Value::Object(body)),
        )
        .await
    }
}

/// A stack's output by key (`outputs` as `GET /stacks/…` lists them).
pub fn output<'a>(stack: &'a Value, key: &str) -> Option<&'a Value> {
    stack["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["output_key"] == key)
        .map(|o| &o["output_value"])
}
