//! Keystone trusts per cluster, as upstream's conductor made them: a
//! trustee user `<cluster uuid>_<project>` in `[trust] trustee_domain_*`,
//! created by the trustee domain's admin, and a trust from the cluster's
//! owner to it (impersonation; redelegable, so Heat can take its own trust
//! from it) with `[trust] roles`, or the
//! owner's roles when none are configured. Drivers use them to act for the
//! owner later, with no user token kept anywhere.
//!
//! The trust is made with the owner's own token, so the API makes it while
//! it holds the request; the conductor removes both when the cluster is
//! gone (the trust through a token of the trust itself, since only its
//! trustor may delete it; the user as the domain admin).

use std::time::Duration;

use magnum_core::config::Config;
use magnum_core::RequestContext;
use magnum_db::ClusterTrust;
use rand::Rng;
use serde_json::{json, Value};

/// Who administers the trustee domain (`[trust] trustee_domain_admin_*`).
#[derive(Clone)]
struct DomainAdmin {
    user_id: Option<String>,
    user_name: Option<String>,
    user_domain: (Option<String>, Option<String>),
    domain: (Option<String>, Option<String>),
    password: String,
}

/// Makes and removes cluster trusts.
#[derive(Clone)]
pub struct TrustManager {
    http: reqwest::Client,
    identity: String,
    admin: DomainAdmin,
    roles: Vec<String>,
}

impl std::fmt::Debug for TrustManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustManager")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn domain_json((id, name): &(Option<String>, Option<String>)) -> Value {
    match (id, name) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(name)) => json!({ "name": name }),
        (None, None) => json!({ "id": "default" }),
    }
}

fn password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

impl TrustManager {
    /// The manager `[trust]` and `[keystone_authtoken] auth_url` describe;
    /// `None` when no trustee domain admin is configured.
    pub fn from_conf(conf: &Config) -> Option<TrustManager> {
        let s = |sec: &str, k: &str| conf.str(sec, k).filter(|v| !v.is_empty());
        let password = conf
            .secret("trust", "trustee_domain_admin_password")?
            .expose()
            .to_string();
        let auth_url = s("keystone_authtoken", "auth_url")?;
        let base = auth_url.trim_end_matches('/');
        let identity = if base.ends_with("/v3") {
            base.to_string()
        } else {
            format!("{base}/v3")
        };
        let domain = (
            s("trust", "trustee_domain_id"),
            s("trust", "trustee_domain_name"),
        );
        let user_domain = (
            s("trust", "trustee_domain_admin_domain_id").or_else(|| domain.0.clone()),
            s("trust", "trustee_domain_admin_domain_name").or_else(|| domain.1.clone()),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .danger_accept_invalid_certs(conf.bool("keystone_authtoken", "insecure"))
            .build()
            .ok()?;
        Some(TrustManager {
            http,
            identity,
            admin: DomainAdmin {
                user_id: s("trust", "trustee_domain_admin_id"),
                user_name: s("trust", "trustee_domain_admin_name"),
                user_domain,
                domain,
                password,
            },
            roles: conf.list("trust", "roles"),
        })
    }

    async fn token(&self, body: Value) -> Result<(String, Value), String> {
        let resp = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.identity))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Keystone: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "Keystone refused authentication: {}",
                resp.status()
            ));
        }
        let token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or("Keystone sent no token")?;
        let data: Value = resp.json().await.map_err(|e| e.to_string())?;
        Ok((token, data))
    }

    /// A token of the trustee domain's admin, and the domain's id.
    async fn admin_token(&self) -> Result<(String, String), String> {
        let mut user = json!({ "password": self.admin.password, "domain": domain_json(&self.admin.user_domain) });
        match (&self.admin.user_id, &self.admin.user_name) {
            (Some(id), _) => user["id"] = json!(id),
            (None, Some(name)) => user["name"] = json!(name),
            (None, None) => {
                return Err("[trust] trustee_domain_admin_id or _name is not set".into())
            }
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"domain": domain_json(&self.admin.domain)},
        }});
        let (token, data) = self.token(body).await?;
        let domain = data["token"]["domain"]["id"]
            .as_str()
            .ok_or("the trustee domain admin's token has no domain")?
            .to_string();
        Ok((token, domain))
    }

    /// Make the trustee and the trust for a new cluster of the caller.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        cluster_uuid: &str,
    ) -> Result<ClusterTrust, String> {
        let user_token = ctx
            .auth_token
            .as_ref()
            .ok_or("the request carries no token to make a trust with")?;
        let project = ctx.project_id.clone().unwrap_or_default();
        let (admin, domain_id) = self.admin_token().await?;
        let name = format!("{cluster_uuid}_{project}");
        let secret = password();
        let resp = self
            .http
            .post(format!("{}/users", self.identity))
            .header("X-Auth-Token", &admin)
            .json(&json!({"user": {"name": name, "password": secret, "domain_id": domain_id}}))
            .send()
            .await
            .map_err(|e| format!("Keystone: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("cannot create the trustee user: {}", resp.status()));
        }
        let user: Value = resp.json().await.map_err(|e| e.to_string())?;
        let trustee = user["user"]["id"].as_str().unwrap_or_default().to_string();
        let roles: Vec<Value> = if self.roles.is_empty() {
            ctx.roles.iter().map(|r| json!({ "name": r })).collect()
        } else {
            self.roles.iter().map(|r| json!({ "name": r })).collect()
        };
        let resp = self
            .http
            .post(format!("{}/OS-TRUST/trusts", self.identity))
            .header("X-Auth-Token", user_token.expose())
            .json(&json!({"trust": {
                "trustor_user_id": ctx.user_id,
                "trustee_user_id": trustee,
                "project_id": project,
                "impersonation": true,
                // Heat makes its own trust from the token it is called
                // with; from a trust-scoped token Keystone allows that
                // only as a redelegation of this trust.
                "allow_redelegation": true,
                "roles": roles,
            }}))
            .send()
            .await;
        let trust = match resp {
            Ok(r) if r.status().is_success() => {
                r.json::<Value>().await.map_err(|e| e.to_string())?
            }
            other => {
                let why = match other {
                    Ok(r) => r.status().to_string(),
                    Err(e) => e.to_string(),
                };
                // Leave nothing behind.
                let _ = self.delete_user(&admin, &trustee).await;
                return Err(format!("cannot create the trust: {why}"));
            }
        };
        Ok(ClusterTrust {
            cluster_uuid: cluster_uuid.to_string(),
            trustee_user_id: Some(trustee),
            trustee_username: Some(name),
            trustee_password: Some(secret),
            trust_id: trust["trust"]["id"].as_str().map(str::to_string),
        })
    }

    async fn delete_user(&self, admin: &str, user: &str) -> Result<(), String> {
        let resp = self
            .http
            .delete(format!("{}/users/{user}", self.identity))
            .header("X-Auth-Token", admin)
            .send()
            .await
            .map_err(|e| format!("Keystone: {e}"))?;
        match resp.status().as_u16() {
            204 | 404 => Ok(()),
            s => Err(format!("cannot delete the trustee user: {s}")),
        }
    }

    /// Remove a cluster's trust and trustee (what is already gone is fine).
    pub async fn delete(&self, t: &ClusterTrust) -> Result<(), String> {
        if let (Some(trust), Some(user), Some(pw)) =
            (&t.trust_id, &t.trustee_user_id, &t.trustee_password)
        {
            // Only the trustor may delete a trust: act as it through the trust.
            let body = json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {"id": user, "password": pw}}},
                "scope": {"OS-TRUST:trust": {"id": trust}},
            }});
            if let Ok((token, _)) = self.token(body).await {
                let resp = self
                    .http
                    .delete(format!("{}/OS-TRUST/trusts/{trust}", self.identity))
                    .header("X-Auth-Token", &token)
                    .send()
                    .await
                    .map_err(|e| format!("Keystone: {e}"))?;
                if !matches!(resp.status().as_u16(), 204 | 404) {
                    return Err(format!("cannot delete the trust: {}", resp.status()));
                }
            }
        }
        if let Some(user) = &t.trustee_user_id {
            let (admin, _) = self.admin_token().await?;
            self.delete_user(&admin, user).await?;
        }
        Ok(())
    }
}
