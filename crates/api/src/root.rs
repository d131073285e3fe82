//! The version documents: `/` lists the API versions, `/v1` describes v1.

use axum::extract::State;
use axum::Json;
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

pub async fn root(_: State<AppState>, base: BaseUrl) -> Json<Value> {
    Json(json!({
        "name": "OpenStack Magnum API",
        "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
        "versions": [{
            "id": "v1",
            "links": [base.link("self", "v1", "", true)],
            "status": "CURRENT",
            "max_version": MAX_VERSION.to_string(),
            "min_version": MIN_VERSION.to_string(),
        }],
    }))
}

pub async fn v1(_: State<AppState>, base: BaseUrl) -> Json<Value> {
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
    Json(Value::Object(doc))
}
