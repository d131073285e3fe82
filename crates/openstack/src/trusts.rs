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

use magnum_core::config::opts;
use std::time::Duration;

use magnum_core::config::Config;
use magnum_core::objects::ClusterTrust;
use magnum_core::RequestContext;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::HttpClient;

/// What went wrong making or removing a trust.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("[trust] trustee_domain_admin_id or _name is not set")]
    NoDomainAdmin,
    #[error("the request carries no token to make a trust with")]
    NoUserToken,
    /// A request to Keystone failed.
    #[error("Keystone")]
    Unreachable(#[source] reqwest::Error),
    /// Keystone's answer could not be read.
    #[error("cannot read Keystone's answer")]
    Decode(#[source] reqwest::Error),
    #[error("Keystone refused authentication: {0}")]
    Refused(StatusCode),
    #[error("Keystone sent no token")]
    NoToken,
    #[error("the trustee domain admin's token has no domain")]
    NoDomain,
    #[error("cannot create the trustee user: {0}")]
    CreateUser(StatusCode),
    #[error("cannot create the trust: {0}")]
    CreateTrustRefused(StatusCode),
    #[error("cannot create the trust")]
    CreateTrust(#[source] reqwest::Error),
    #[error("cannot delete the trust: {0}")]
    DeleteTrust(StatusCode),
    #[error("cannot delete the trustee user: {0}")]
    DeleteUser(u16),
}

impl TrustError {
    /// The text a cluster's status reason shows: this error and the HTTP
    /// client's own words, without the lower causes.
    pub fn reason(&self) -> String {
        match self {
            TrustError::Decode(e) => e.to_string(),
            other => match std::error::Error::source(other) {
                Some(s) => format!("{other}: {s}"),
                None => other.to_string(),
            },
        }
    }
}

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
    /// The options a trust manager needs that `conf` leaves unset, as
    /// `[section] option` texts for an operator: empty when trusts can
    /// be made.
    pub fn unset_options(conf: &Config) -> Vec<&'static str> {
        let set = |sec: &str, k: &str| conf.str(sec, k).is_some_and(|v| !v.is_empty());
        let mut unset = Vec::new();
        if !set("keystone_authtoken", "auth_url") {
            unset.push("[keystone_authtoken] auth_url");
        }
        if !set("trust", "trustee_domain_admin_id") && !set("trust", "trustee_domain_admin_name") {
            unset.push("[trust] trustee_domain_admin_id or trustee_domain_admin_name");
        }
        if conf
            .get(opts::trust::TRUSTEE_DOMAIN_ADMIN_PASSWORD)
            .is_none_or(|p| p.expose().is_empty())
        {
            unset.push("[trust] trustee_domain_admin_password");
        }
        unset
    }

    /// The manager `[trust]` and `[keystone_authtoken] auth_url` describe;
    /// `None` when any of them is unset (`unset_options` names which).
    pub fn from_conf(conf: &Config) -> Option<TrustManager> {
        if !Self::unset_options(conf).is_empty() {
            return None;
        }
        let s = |sec: &str, k: &str| conf.str(sec, k).filter(|v| !v.is_empty());
        let password = conf
            .get(opts::trust::TRUSTEE_DOMAIN_ADMIN_PASSWORD)?
            .expose()
            .to_string();
        let auth_url = s("keystone_authtoken", "auth_url")?;
        let domain = (
            s("trust", "trustee_domain_id"),
            s("trust", "trustee_domain_name"),
        );
        let user_domain = (
            s("trust", "trustee_domain_admin_domain_id").or_else(|| domain.0.clone()),
            s("trust", "trustee_domain_admin_domain_name").or_else(|| domain.1.clone()),
        );
        let http = HttpClient::new(Duration::from_secs(15))
            .insecure(conf.get(opts::keystone_authtoken::INSECURE))
            .build()
            .ok()?;
        Some(TrustManager {
            http,
            identity: crate::identity_url(&auth_url),
            admin: DomainAdmin {
                user_id: s("trust", "trustee_domain_admin_id"),
                user_name: s("trust", "trustee_domain_admin_name"),
                user_domain,
                domain,
                password,
            },
            roles: conf.get(opts::trust::ROLES),
        })
    }

    async fn token(&self, body: Value) -> Result<(String, Value), TrustError> {
        let resp = self
            .http
            .post(format!("{}/auth/tokens?nocatalog", self.identity))
            .json(&body)
            .send()
            .await
            .map_err(TrustError::Unreachable)?;
        if !resp.status().is_success() {
            return Err(TrustError::Refused(resp.status()));
        }
        let token = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(TrustError::NoToken)?;
        let data: Value = resp.json().await.map_err(TrustError::Decode)?;
        Ok((token, data))
    }

    /// A token of the trustee domain's admin, and the domain's id.
    async fn admin_token(&self) -> Result<(String, String), TrustError> {
        let mut user = json!({ "password": self.admin.password, "domain": domain_json(&self.admin.user_domain) });
        match (&self.admin.user_id, &self.admin.user_name) {
            (Some(id), _) => user["id"] = json!(id),
            (None, Some(name)) => user["name"] = json!(name),
            (None, None) => return Err(TrustError::NoDomainAdmin),
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"domain": domain_json(&self.admin.domain)},
        }});
        let (token, data) = self.token(body).await?;
        let domain = data["token"]["domain"]["id"]
            .as_str()
            .ok_or(TrustError::NoDomain)?
            .to_string();
        Ok((token, domain))
    }

    /// Make the trustee and the trust for a new cluster of the caller.
    pub async fn create(
        &self,
        ctx: &RequestContext,
        cluster_uuid: &str,
    ) -> Result<ClusterTrust, TrustError> {
        let user_token = ctx.auth_token.as_ref().ok_or(TrustError::NoUserToken)?;
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
            .map_err(TrustError::Unreachable)?;
        if !resp.status().is_success() {
            return Err(TrustError::CreateUser(resp.status()));
        }
        let user: Value = resp.json().await.map_err(TrustError::Decode)?;
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
                r.json::<Value>().await.map_err(TrustError::Decode)?
            }
            other => {
                // Leave nothing behind.
                let _ = self.delete_user(&admin, &trustee).await;
                return Err(match other {
                    Ok(r) => TrustError::CreateTrustRefused(r.status()),
                    Err(e) => TrustError::CreateTrust(e),
                });
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

    async fn delete_user(&self, admin: &str, user: &str) -> Result<(), TrustError> {
        let resp = self
            .http
            .delete(format!("{}/users/{user}", self.identity))
            .header("X-Auth-Token", admin)
            .send()
            .await
            .map_err(TrustError::Unreachable)?;
        match resp.status().as_u16() {
            204 | 404 => Ok(()),
            s => Err(TrustError::DeleteUser(s)),
        }
    }

    /// Remove a cluster's trust and trustee (what is already gone is fine).
    pub async fn delete(&self, t: &ClusterTrust) -> Result<(), TrustError> {
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
                    .map_err(TrustError::Unreachable)?;
                if !matches!(resp.status().as_u16(), 204 | 404) {
                    return Err(TrustError::DeleteTrust(resp.status()));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A trust removal while Keystone does not answer says so on the
    /// cluster in the same words as before: `Keystone: <the request's error>`.
    #[tokio::test]
    async fn an_unreachable_keystone_reads_as_before() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = Config::parse(
            &format!(
                "[keystone_authtoken]\nauth_url = http://127.0.0.1:{port}\n\
                 [trust]\ntrustee_domain_admin_name = admin\n\
                 trustee_domain_admin_password = pw\n"
            ),
            "test",
        )
        .unwrap();
        let m = TrustManager::from_conf(&conf).unwrap();
        let t = ClusterTrust {
            cluster_uuid: "c".into(),
            trustee_user_id: Some("u".into()),
            ..Default::default()
        };
        let e = m.delete(&t).await.unwrap_err();
        let TrustError::Unreachable(inner) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(e.reason(), format!("Keystone: {inner}"));
        assert!(
            e.reason().starts_with(&format!(
                "Keystone: error sending request for url (http://127.0.0.1:{port}/v3/auth/tokens?nocatalog)"
            )),
            "{}",
            e.reason()
        );
        assert_eq!(e.to_string(), "Keystone");
    }

    #[test]
    fn reasons_read_as_before() {
        assert_eq!(
            TrustError::DeleteTrust(StatusCode::FORBIDDEN).reason(),
            "cannot delete the trust: 403 Forbidden"
        );
        assert_eq!(
            TrustError::DeleteUser(500).reason(),
            "cannot delete the trustee user: 500"
        );
        assert_eq!(
            TrustError::Refused(StatusCode::UNAUTHORIZED).reason(),
            "Keystone refused authentication: 401 Unauthorized"
        );
    }

    /// The options trusts need are named when unset, and a manager is
    /// made only when none is.
    #[test]
    fn unset_options_are_named() {
        let none = Config::parse("", "test").unwrap();
        assert_eq!(
            TrustManager::unset_options(&none),
            [
                "[keystone_authtoken] auth_url",
                "[trust] trustee_domain_admin_id or trustee_domain_admin_name",
                "[trust] trustee_domain_admin_password",
            ]
        );
        assert!(TrustManager::from_conf(&none).is_none());
        let no_admin = Config::parse(
            "[keystone_authtoken]\nauth_url = http://ks/v3\n\
             [trust]\ntrustee_domain_admin_password = pw\n",
            "test",
        )
        .unwrap();
        assert_eq!(
            TrustManager::unset_options(&no_admin),
            ["[trust] trustee_domain_admin_id or trustee_domain_admin_name"]
        );
        assert!(TrustManager::from_conf(&no_admin).is_none());
        let all = Config::parse(
            "[keystone_authtoken]\nauth_url = http://ks/v3\n\
             [trust]\ntrustee_domain_admin_id = a1\ntrustee_domain_admin_password = pw\n",
            "test",
        )
        .unwrap();
        assert!(TrustManager::unset_options(&all).is_empty());
        assert!(TrustManager::from_conf(&all).is_some());
    }
}
