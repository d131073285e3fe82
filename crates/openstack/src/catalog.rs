//! Cloud lookups through the caller's service catalog (Keystone mode): the
//! Glance, Nova and Neutron checks upstream makes when templates and
//! clusters are created, with the caller's own token, at the endpoints its
//! token's catalog lists for `[glance_client]`, `[nova_client]` and
//! `[neutron_client]` (`region_name`, `endpoint_type`).

use std::time::Duration;

use magnum_core::cloud::{BoxFuture, CloudLookup, Flavor, Image, Lookup};
use magnum_core::config::Config;
use magnum_core::{MagnumError, RequestContext};
use serde_json::Value;

use crate::{Chain, HttpClient, Selector};

/// Why a service of the caller's catalog could not answer a lookup.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request failed, or its answer could not be read.
    #[error("cannot reach the {service} service")]
    Unreachable {
        service: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is neither found, not found nor refused (5xx, …).
    #[error("cannot reach the {service} service: it answered {status}")]
    Status { service: String, status: u16 },
    /// The caller may not read it (403).
    #[error("Not authorized to read {0}")]
    Forbidden(String),
    /// The service refused the caller's token (revoked since it was
    /// validated, or the service trusts another Keystone).
    #[error("the {service} service refused the caller's token (401 at {path})")]
    TokenRefused { service: String, path: String },
}

impl From<CatalogError> for MagnumError {
    /// An unreachable or failing service is 503, the details logged; a
    /// refused read 403. A refused token is not an outage, so not 503:
    /// upstream's openstacksdk raises an HttpException that carries no
    /// HTTP code of Magnum's, which its API answers with 500; so do we,
    /// the cause logged.
    fn from(e: CatalogError) -> MagnumError {
        match e {
            CatalogError::Unreachable { ref service, .. }
            | CatalogError::Status { ref service, .. } => {
                tracing::warn!("{}", Chain(&e));
                MagnumError::ServiceUnavailable(format!(
                    "The {service} service could not be reached; try again later."
                ))
            }
            CatalogError::Forbidden(_) => MagnumError::NotAuthorized(e.to_string()),
            CatalogError::TokenRefused { .. } => MagnumError::Internal(e.to_string()),
        }
    }
}

/// Lookups in the cloud the caller's catalog describes.
#[derive(Debug, Clone)]
pub struct CatalogCloud {
    http: reqwest::Client,
    image: Selector,
    compute: Selector,
    network: Selector,
}

fn uuid_like(s: &str) -> bool {
    uuid::Uuid::parse_str(s.trim()).is_ok()
}

impl CatalogCloud {
    pub fn from_conf(conf: &Config) -> CatalogCloud {
        CatalogCloud {
            http: HttpClient::new(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            image: Selector::from_conf(conf, "glance_client", "image"),
            compute: Selector::from_conf(conf, "nova_client", "compute"),
            network: Selector::from_conf(conf, "neutron_client", "network"),
        }
    }

    /// The endpoint of a service in the caller's catalog.
    fn endpoint(ctx: &RequestContext, sel: &Selector) -> Option<String> {
        let catalog = ctx.catalog.as_ref()?;
        sel.find(catalog).ok()
    }

    /// GET `url` with the caller's token: `Ok(None)` on 404.
    async fn get(
        &self,
        ctx: &RequestContext,
        what: &str,
        url: &str,
    ) -> Result<Option<Value>, MagnumError> {
        Ok(self.fetch(ctx, what, url).await?)
    }

    async fn fetch(
        &self,
        ctx: &RequestContext,
        what: &str,
        url: &str,
    ) -> Result<Option<Value>, CatalogError> {
        let unreachable = |source| CatalogError::Unreachable {
            service: what.to_string(),
            source,
        };
        let mut req = self.http.get(url);
        if let Some(t) = &ctx.auth_token {
            req = req.header("X-Auth-Token", t.expose());
        }
        let resp = req.send().await.map_err(unreachable)?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(resp.json().await.map_err(unreachable)?)),
            404 => Ok(None),
            403 => Err(CatalogError::Forbidden(what.to_string())),
            401 => Err(CatalogError::TokenRefused {
                service: what.to_string(),
                path: resp.url().path().to_string(),
            }),
            status => Err(CatalogError::Status {
                service: what.to_string(),
                status,
            }),
        }
    }

    /// The endpoint to check `what` at. A service missing from the
    /// caller's catalog is the deployment's state, not a fault of ours:
    /// 400 naming the service, its interface and region, and what could
    /// not be checked (upstream's keystoneauth raises EndpointNotFound,
    /// which its API answers with a bare 500).
    fn base(
        &self,
        ctx: &RequestContext,
        sel: &Selector,
        what: &str,
    ) -> Result<Option<String>, MagnumError> {
        if ctx.catalog.is_none() {
            return Ok(None);
        }
        Self::endpoint(ctx, sel)
            .map(Some)
            .ok_or_else(|| missing_service(sel, what))
    }
}

/// The 400 for a service the caller's catalog does not list.
fn missing_service(sel: &Selector, what: &str) -> MagnumError {
    let project = match sel.service_type {
        "compute" => " (nova)",
        "image" => " (glance)",
        "network" => " (neutron)",
        _ => "",
    };
    let region = match &sel.region {
        Some(r) => format!("region {r} of "),
        None => String::new(),
    };
    MagnumError::Invalid(format!(
        "The {service} service{project} has no {interface} endpoint in {region}the caller's catalog, so the {what} cannot be checked; ask the cloud's operator to register it in Keystone, or set [{section}] region_name and endpoint_type to one the catalog lists.",
        service = sel.service_type,
        interface = sel.interface,
        section = match sel.service_type {
            "compute" => "nova_client",
            "image" => "glance_client",
            _ => "neutron_client",
        },
    ))
}

fn versioned(base: &str, version: &str) -> String {
    if base.ends_with(version) {
        base.to_string()
    } else {
        format!("{base}/{version}")
    }
}

fn query(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl CloudLookup for CatalogCloud {
    fn configured(&self) -> bool {
        true
    }

    fn image<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<Image>, MagnumError>> {
        Box::pin(async move {
            let Some(base) = self.base(ctx, &self.image, "image")? else {
                return Ok(Lookup::Skipped);
            };
            let api = versioned(&base, "v2");
            let mut found = None;
            if uuid_like(ident) {
                found = self
                    .get(ctx, "image", &format!("{api}/images/{ident}"))
                    .await?;
            }
            if found.is_none() {
                let list = self
                    .get(ctx, "image", &format!("{api}/images?name={}", query(ident)))
                    .await?;
                let images = list
                    .as_ref()
                    .and_then(|l| l["images"].as_array().cloned())
                    .unwrap_or_default();
                if images.len() > 1 {
                    return Err(MagnumError::Conflict(format!(
                        "Multiple images exist with same name {ident}. Please use the image id instead."
                    )));
                }
                found = images.into_iter().next();
            }
            let img = found.ok_or_else(|| MagnumError::ImageNotFound(ident.to_string()))?;
            let s = |k: &str| img[k].as_str().map(str::to_string);
            Ok(Lookup::Found(Image {
                id: s("id").unwrap_or_default(),
                name: s("name"),
                os_distro: s("os_distro"),
                magnum_driver: s("magnum_driver"),
            }))
        })
    }

    fn flavor<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<Flavor>, MagnumError>> {
        Box::pin(async move {
            let Some(base) = self.base(ctx, &self.compute, "flavor")? else {
                return Ok(Lookup::Skipped);
            };
            let mut found = self
                .get(ctx, "compute", &format!("{base}/flavors/{}", query(ident)))
                .await?
                .map(|f| f["flavor"].clone());
            if found.is_none() {
                let list = self
                    .get(ctx, "compute", &format!("{base}/flavors/detail"))
                    .await?;
                found = list
                    .and_then(|l| l["flavors"].as_array().cloned())
                    .and_then(|fs| fs.into_iter().find(|f| f["name"] == ident));
            }
            let f = found.ok_or_else(|| MagnumError::FlavorNotFound(ident.to_string()))?;
            Ok(Lookup::Found(Flavor {
                id: f["id"].as_str().unwrap_or_default().to_string(),
                name: f["name"].as_str().unwrap_or_default().to_string(),
                disk_gb: f["disk"].as_u64().unwrap_or(0),
            }))
        })
    }

    fn keypair<'a>(
        &'a self,
        ctx: &'a RequestContext,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<()>, MagnumError>> {
        Box::pin(async move {
            let Some(base) = self.base(ctx, &self.compute, "keypair")? else {
                return Ok(Lookup::Skipped);
            };
            match self
                .get(
                    ctx,
                    "compute",
                    &format!("{base}/os-keypairs/{}", query(name)),
                )
                .await?
            {
                Some(_) => Ok(Lookup::Found(())),
                None => Err(MagnumError::KeyPairNotFound(name.to_string())),
            }
        })
    }

    fn network<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
        external: bool,
    ) -> BoxFuture<'a, Result<Lookup<String>, MagnumError>> {
        Box::pin(async move {
            let Some(base) = self.base(
                ctx,
                &self.network,
                if external {
                    "external network"
                } else {
                    "fixed network"
                },
            )?
            else {
                return Ok(Lookup::Skipped);
            };
            let api = versioned(&base, "v2.0");
            let mut found = None;
            if uuid_like(ident) {
                found = self
                    .get(ctx, "network", &format!("{api}/networks/{ident}"))
                    .await?
                    .map(|n| n["network"].clone());
            }
            if found.is_none() {
                let list = self
                    .get(
                        ctx,
                        "network",
                        &format!("{api}/networks?name={}", query(ident)),
                    )
                    .await?;
                found = list
                    .and_then(|l| l["networks"].as_array().cloned())
                    .and_then(|ns| ns.into_iter().next());
            }
            let not_found = || {
                if external {
                    MagnumError::ExternalNetworkNotFound(ident.to_string())
                } else {
                    MagnumError::FixedNetworkNotFound(ident.to_string())
                }
            };
            let net = found.ok_or_else(not_found)?;
            if external && net["router:external"] != Value::Bool(true) {
                return Err(not_found());
            }
            Ok(Lookup::Found(
                net["id"].as_str().unwrap_or_default().to_string(),
            ))
        })
    }

    fn subnet<'a>(
        &'a self,
        ctx: &'a RequestContext,
        ident: &'a str,
    ) -> BoxFuture<'a, Result<Lookup<String>, MagnumError>> {
        Box::pin(async move {
            let Some(base) = self.base(ctx, &self.network, "fixed subnet")? else {
                return Ok(Lookup::Skipped);
            };
            let api = versioned(&base, "v2.0");
            let mut found = None;
            if uuid_like(ident) {
                found = self
                    .get(ctx, "network", &format!("{api}/subnets/{ident}"))
                    .await?
                    .map(|n| n["subnet"].clone());
            }
            if found.is_none() {
                let list = self
                    .get(
                        ctx,
                        "network",
                        &format!("{api}/subnets?name={}", query(ident)),
                    )
                    .await?;
                found = list
                    .and_then(|l| l["subnets"].as_array().cloned())
                    .and_then(|ns| ns.into_iter().next());
            }
            let sub = found.ok_or_else(|| MagnumError::FixedSubnetNotFound(ident.to_string()))?;
            Ok(Lookup::Found(
                sub["id"].as_str().unwrap_or_default().to_string(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A service at a local port that answers every request with `status`.
    fn answering(status: &'static str) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut sock in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf);
                let body = r#"{"error": {"code": 401, "message": "The request you have made requires authentication."}}"#;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes());
            }
        });
        port
    }

    fn context_at(service: &str, port: u16) -> RequestContext {
        let catalog = serde_json::json!([{"type": service, "endpoints": [
            {"interface": "public", "region_id": "RegionOne",
             "url": format!("http://127.0.0.1:{port}")}]}]);
        RequestContext {
            catalog: Some(std::sync::Arc::new(catalog)),
            auth_token: Some(magnum_core::context::Token::new("revoked")),
            ..Default::default()
        }
    }

    /// A service refusing the caller's token is not an outage: 500 (what
    /// upstream answers), not 503, for every lookup.
    #[tokio::test]
    async fn a_refused_token_is_500_not_503() {
        let port = answering("401 Unauthorized");
        let cloud = CatalogCloud::from_conf(&Config::defaults());
        let compute = context_at("compute", port);
        let network = context_at("network", port);
        let image = context_at("image", port);
        let failures = [
            cloud.flavor(&compute, "m1.small").await.map(drop),
            cloud.keypair(&compute, "kp").await.map(drop),
            cloud.network(&network, "public", true).await.map(drop),
            cloud.subnet(&network, "private").await.map(drop),
            cloud.image(&image, "fedora").await.map(drop),
        ];
        for f in failures {
            let e = f.unwrap_err();
            assert_eq!(e.code(), 500, "{e}");
            assert!(e.to_string().contains("refused the caller's token"), "{e}");
        }
    }

    /// A catalog service that does not answer is a 503 naming it, not a 500.
    #[tokio::test]
    async fn an_unreachable_service_is_503() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let catalog = serde_json::json!([{"type": "image", "endpoints": [
            {"interface": "public", "region_id": "RegionOne",
             "url": format!("http://127.0.0.1:{port}")}]}]);
        let ctx = RequestContext {
            catalog: Some(std::sync::Arc::new(catalog)),
            ..Default::default()
        };
        let cloud = CatalogCloud::from_conf(&Config::defaults());
        let Err(e) = cloud.image(&ctx, "fedora-coreos-40").await else {
            panic!("an image was found on a closed port");
        };
        assert_eq!(e.code(), 503, "{e}");
        assert_eq!(
            e.to_string(),
            "The image service could not be reached; try again later."
        );
    }

    /// A service the caller's catalog does not list is a 400 naming it
    /// and what could not be checked, not a 500.
    #[tokio::test]
    async fn a_service_missing_from_the_catalog_is_400_naming_it() {
        // A catalog with only an identity service.
        let catalog = serde_json::json!([{"type": "identity", "endpoints": [
            {"interface": "public", "region_id": "RegionOne",
             "url": "http://127.0.0.1:1/identity"}]}]);
        let ctx = RequestContext {
            catalog: Some(std::sync::Arc::new(catalog)),
            ..Default::default()
        };
        let cloud = CatalogCloud::from_conf(&Config::defaults());
        let cases = [
            (
                cloud.flavor(&ctx, "m1.small").await.map(drop),
                "compute service (nova)",
                "flavor",
            ),
            (
                cloud.keypair(&ctx, "kp").await.map(drop),
                "compute service (nova)",
                "keypair",
            ),
            (
                cloud.image(&ctx, "fedora").await.map(drop),
                "image service (glance)",
                "image",
            ),
            (
                cloud.network(&ctx, "public", true).await.map(drop),
                "network service (neutron)",
                "external network",
            ),
            (
                cloud.subnet(&ctx, "private").await.map(drop),
                "network service (neutron)",
                "fixed subnet",
            ),
        ];
        for (result, service, what) in cases {
            let e = result.unwrap_err();
            assert_eq!(e.code(), 400, "{e}");
            let text = e.to_string();
            assert!(text.starts_with(&format!("The {service} has no public endpoint in the caller's catalog, so the {what} cannot be checked;")), "{text}");
        }
        // A configured region is named.
        let mut conf = Config::defaults();
        conf.set("nova_client", "region_name", "RegionTwo").unwrap();
        let cloud = CatalogCloud::from_conf(&conf);
        let e = cloud.flavor(&ctx, "m1.small").await.unwrap_err();
        assert!(
            e.to_string()
                .contains("no public endpoint in region RegionTwo of the caller's catalog"),
            "{e}"
        );
        assert!(e.to_string().contains("[nova_client] region_name"), "{e}");
    }
}
