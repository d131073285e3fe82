//! The version documents: `/` lists the API versions, `/v1` describes v1.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::links::BaseUrl;
use crate::version::{MAX_VERSION, MIN_VERSION};
use crate::AppState;

/// The resources `/v1` links to.
const RESOURCES: [&str; 9] = [
    "clustertemplates",
    "clusters",
    "quotas",
    "certificates",
    "mservices",
    "stats",
    "federations",
    "nodegroups",
    "credentials",
];

/// The two documents differ only by their base URL, so each is rendered once
/// per base URL and then served as bytes. The base comes from the request's
/// Host header, so at most [`BASES`] of them are kept; others are rendered
/// each time.
fn rendered(doc: Doc, base: &BaseUrl) -> Response {
    static CACHE: OnceLock<Mutex<HashMap<(Doc, String), Bytes>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (doc, base.0.clone());
    let known = cache.lock().ok().and_then(|m| m.get(&key).cloned());
    let body = match known {
        Some(body) => body,
        None => {
            let value = match doc {
                Doc::Root => root_document(base),
                Doc::V1 => v1_document(base),
            };
            let body = Bytes::from(serde_json::to_vec(&value).expect("JSON values serialize"));
            if let Ok(mut m) = cache.lock() {
                if m.len() < BASES {
                    m.insert(key, body.clone());
                }
            }
            body
        }
    };
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// How many base URLs' documents are kept.
const BASES: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Doc {
    Root,
    V1,
}

pub async fn root(_: State<AppState>, base: BaseUrl) -> Response {
    rendered(Doc::Root, &base)
}

pub async fn v1(_: State<AppState>, base: BaseUrl) -> Response {
    rendered(Doc::V1, &base)
}

fn root_document(base: &BaseUrl) -> Value {
    json!({
        "name": "OpenStack Magnum API",
        "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
        "versions": [{
            "id": "v1",
            "links": [base.link("self", "v1", "", true)],
            "status": "CURRENT",
            "max_version": MAX_VERSION.to_string(),
            "min_version": MIN_VERSION.to_string(),
        }],
    })
}

fn v1_document(base: &BaseUrl) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), json!("v1"));
    doc.insert(
        "links".into(),
        json!([
            base.link("self", "v1", "", true),
            {
                "href": "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html",
                "rel": "describedby",
                "type": "text/html",
            },
        ]),
    );
    doc.insert(
        "media_types".into(),
        json!([{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}]),
    );
    for resource in RESOURCES {
        let links = if resource == "nodegroups" {
            json!([
                base.link("self", "clusters/{cluster_id}", "nodegroups", false),
                base.link("bookmark", "clusters/{cluster_id}", "nodegroups", true),
            ])
        } else {
            json!([
                base.link("self", resource, "", false),
                base.link("bookmark", resource, "", true),
            ])
        };
        doc.insert(resource.into(), links);
    }
    Value::Object(doc)
}
