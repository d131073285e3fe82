//! Magnum's persistent objects as the rest of the code sees them: plain
//! structs with upstream's field names (the same names the REST API and
//! oslo.versionedobjects use), free of any storage or wire concern.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Key/value labels. Upstream's `DictOfStringsField` turns every value into a
/// string (Python's `str()`), so `1` becomes `"1"` and `true` becomes `"True"`.
pub type Labels = Map<String, Value>;

/// Coerce a JSON label value to the string upstream stores.
pub fn label_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Null => "None".to_string(),
        other => other.to_string(),
    }
}

/// Normalise labels to string values, as upstream's object layer does.
pub fn normalize_labels(labels: &Map<String, Value>) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(label_string(v))))
        .collect()
}

/// A ClusterTemplate: the blueprint clusters are built from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterTemplate {
    pub id: i64,
    pub uuid: String,
    pub name: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub coe: Option<String>,
    pub image_id: Option<String>,
    pub flavor_id: Option<String>,
    pub master_flavor_id: Option<String>,
    pub keypair_id: Option<String>,
    pub external_network_id: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub network_driver: Option<String>,
    pub volume_driver: Option<String>,
    pub dns_nameserver: Option<String>,
    pub apiserver_port: Option<i64>,
    pub docker_volume_size: Option<i64>,
    pub docker_storage_driver: Option<String>,
    pub cluster_distro: Option<String>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub registry_enabled: Option<bool>,
    pub tls_disabled: Option<bool>,
    pub public: Option<bool>,
    pub hidden: Option<bool>,
    pub server_type: Option<String>,
    pub insecure_registry: Option<String>,
    pub master_lb_enabled: Option<bool>,
    pub floating_ip_enabled: Option<bool>,
    pub labels: Option<Labels>,
    pub tags: Option<String>,
    pub driver: Option<String>,
    #[serde(deserialize_with = "stamp")]
    pub created_at: Option<NaiveDateTime>,
    #[serde(deserialize_with = "stamp")]
    pub updated_at: Option<NaiveDateTime>,
}

impl ClusterTemplate {
    /// The template as a JSON object keyed by field name (`as_dict()`).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Rebuild a template from a JSON object keyed by field name.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, serde_json::Error> {
        serde_json::from_value(Value::Object(map))
    }

    pub fn is_public(&self) -> bool {
        self.public.unwrap_or(false)
    }

    pub fn is_hidden(&self) -> bool {
        self.hidden.unwrap_or(false)
    }
}

/// The COE values upstream's object layer knows (`fields.ClusterType`).
pub const COE_VALUES: [&str; 5] = ["kubernetes", "swarm", "mesos", "dcos", "swarm-mode"];
/// The server types upstream's object layer knows (`fields.ServerType`).
pub const SERVER_TYPES: [&str; 2] = ["vm", "bm"];

/// A cluster's trustee user and the trust its owner gave it (our own
/// table, `rs_cluster_trust`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterTrust {
    pub cluster_uuid: String,
    pub trustee_user_id: Option<String>,
    pub trustee_username: Option<String>,
    pub trustee_password: Option<String>,
    pub trust_id: Option<String>,
}

impl std::fmt::Debug for ClusterTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTrust")
            .field("cluster_uuid", &self.cluster_uuid)
            .field("trustee_user_id", &self.trustee_user_id)
            .field("trust_id", &self.trust_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_become_strings_like_upstream() {
        let labels = json!({"a": 1, "b": true, "c": "x", "d": 1.5});
        let out = normalize_labels(labels.as_object().unwrap());
        assert_eq!(
            Value::Object(out),
            json!({"a": "1", "b": "True", "c": "x", "d": "1.5"})
        );
    }

    #[test]
    fn map_round_trip() {
        let ct = ClusterTemplate {
            uuid: "u".into(),
            coe: Some("kubernetes".into()),
            public: Some(true),
            ..Default::default()
        };
        let back = ClusterTemplate::from_map(ct.to_map()).unwrap();
        assert_eq!(ct, back);
    }
}

/// Upstream's cluster (and node group) status values.
pub mod status {
    pub const CREATE_IN_PROGRESS: &str = "CREATE_IN_PROGRESS";
    pub const CREATE_FAILED: &str = "CREATE_FAILED";
    pub const CREATE_COMPLETE: &str = "CREATE_COMPLETE";
    pub const UPDATE_IN_PROGRESS: &str = "UPDATE_IN_PROGRESS";
    pub const UPDATE_FAILED: &str = "UPDATE_FAILED";
    pub const UPDATE_COMPLETE: &str = "UPDATE_COMPLETE";
    pub const DELETE_IN_PROGRESS: &str = "DELETE_IN_PROGRESS";
    pub const DELETE_FAILED: &str = "DELETE_FAILED";
    pub const DELETE_COMPLETE: &str = "DELETE_COMPLETE";
    pub const RESUME_COMPLETE: &str = "RESUME_COMPLETE";
    pub const RESUME_FAILED: &str = "RESUME_FAILED";
    pub const RESTORE_COMPLETE: &str = "RESTORE_COMPLETE";
    pub const ROLLBACK_IN_PROGRESS: &str = "ROLLBACK_IN_PROGRESS";
    pub const ROLLBACK_FAILED: &str = "ROLLBACK_FAILED";
    pub const ROLLBACK_COMPLETE: &str = "ROLLBACK_COMPLETE";
    pub const SNAPSHOT_COMPLETE: &str = "SNAPSHOT_COMPLETE";
    pub const CHECK_COMPLETE: &str = "CHECK_COMPLETE";
    pub const ADOPT_COMPLETE: &str = "ADOPT_COMPLETE";

    /// Every status, in upstream's order.
    pub const ALL: [&str; 18] = [
        CREATE_IN_PROGRESS,
        CREATE_FAILED,
        CREATE_COMPLETE,
        UPDATE_IN_PROGRESS,
        UPDATE_FAILED,
        UPDATE_COMPLETE,
        DELETE_IN_PROGRESS,
        DELETE_FAILED,
        DELETE_COMPLETE,
        RESUME_COMPLETE,
        RESUME_FAILED,
        RESTORE_COMPLETE,
        ROLLBACK_IN_PROGRESS,
        ROLLBACK_FAILED,
        ROLLBACK_COMPLETE,
        SNAPSHOT_COMPLETE,
        CHECK_COMPLETE,
        ADOPT_COMPLETE,
    ];

    /// Statuses from which a cluster may be updated or upgraded
    /// (upstream's `allow_update_status`).
    pub const UPDATABLE: [&str; 8] = [
        CREATE_COMPLETE,
        UPDATE_COMPLETE,
        RESUME_COMPLETE,
        RESTORE_COMPLETE,
        ROLLBACK_COMPLETE,
        SNAPSHOT_COMPLETE,
        CHECK_COMPLETE,
        ADOPT_COMPLETE,
    ];

    /// Statuses from which a cluster may be resized: also after a failed
    /// or during a running update (the cluster autoscaler's case).
    pub const RESIZABLE: [&str; 10] = [
        CREATE_COMPLETE,
        UPDATE_COMPLETE,
        RESUME_COMPLETE,
        RESTORE_COMPLETE,
        ROLLBACK_COMPLETE,
        SNAPSHOT_COMPLETE,
        CHECK_COMPLETE,
        ADOPT_COMPLETE,
        UPDATE_FAILED,
        UPDATE_IN_PROGRESS,
    ];

    /// Statuses in which an operation is running.
    pub const IN_PROGRESS: [&str; 4] = [
        CREATE_IN_PROGRESS,
        UPDATE_IN_PROGRESS,
        DELETE_IN_PROGRESS,
        ROLLBACK_IN_PROGRESS,
    ];
}

/// A cluster: what a ClusterTemplate became, with its node groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cluster {
    pub id: i64,
    pub uuid: String,
    pub name: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub cluster_template_id: Option<String>,
    pub keypair: Option<String>,
    pub docker_volume_size: Option<i64>,
    pub labels: Option<Labels>,
    pub master_flavor_id: Option<String>,
    pub flavor_id: Option<String>,
    pub stack_id: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub health_status: Option<String>,
    pub health_status_reason: Option<Labels>,
    pub create_timeout: Option<i64>,
    pub api_address: Option<String>,
    pub discovery_url: Option<String>,
    pub ca_cert_ref: Option<String>,
    pub magnum_cert_ref: Option<String>,
    pub etcd_ca_cert_ref: Option<String>,
    pub front_proxy_ca_cert_ref: Option<String>,
    pub coe_version: Option<String>,
    pub container_version: Option<String>,
    pub fixed_network: Option<String>,
    pub fixed_subnet: Option<String>,
    pub floating_ip_enabled: Option<bool>,
    pub master_lb_enabled: Option<bool>,
    #[serde(deserialize_with = "stamp")]
    pub created_at: Option<NaiveDateTime>,
    #[serde(deserialize_with = "stamp")]
    pub updated_at: Option<NaiveDateTime>,
}

/// A node group: a set of like nodes of a cluster (its masters, its
/// default workers, or extra groups).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeGroup {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    /// The UUID of the cluster it belongs to.
    pub cluster_id: String,
    pub project_id: String,
    pub docker_volume_size: Option<i64>,
    pub labels: Option<Labels>,
    pub flavor_id: Option<String>,
    pub image_id: Option<String>,
    pub node_addresses: Option<Vec<String>>,
    pub node_count: Option<i64>,
    pub max_node_count: Option<i64>,
    pub min_node_count: Option<i64>,
    pub role: Option<String>,
    pub is_default: Option<bool>,
    pub stack_id: Option<String>,
    pub status: Option<String>,
    pub status_reason: Option<String>,
    pub version: Option<String>,
    pub node_labels: Option<Labels>,
    pub node_taints: Option<Vec<Value>>,
    #[serde(deserialize_with = "stamp")]
    pub created_at: Option<NaiveDateTime>,
    #[serde(deserialize_with = "stamp")]
    pub updated_at: Option<NaiveDateTime>,
}

/// The default node group of a role for a new cluster, as upstream's
/// conductor makes them: `default-master` / `default-worker`, inheriting the
/// cluster's labels, flavors and volume size (else the template's).
pub fn default_nodegroup(
    cluster: &Cluster,
    template: &ClusterTemplate,
    node_count: i64,
    master: bool,
) -> NodeGroup {
    let role = if master { "master" } else { "worker" };
    let labels = cluster.labels.clone().unwrap_or_default();
    let min_node_count = if master {
        None
    } else {
        labels
            .get("min_node_count")
            .map(label_string)
            .and_then(|s| s.parse::<i64>().ok())
    };
    let flavor = if master {
        cluster
            .master_flavor_id
            .clone()
            .or_else(|| template.master_flavor_id.clone())
    } else {
        cluster
            .flavor_id
            .clone()
            .or_else(|| template.flavor_id.clone())
    };
    NodeGroup {
        uuid: uuid_v4(),
        name: format!("default-{role}"),
        cluster_id: cluster.uuid.clone(),
        project_id: cluster.project_id.clone().unwrap_or_default(),
        docker_volume_size: cluster.docker_volume_size.or(template.docker_volume_size),
        labels: Some(labels),
        flavor_id: flavor,
        image_id: template.image_id.clone(),
        node_count: Some(node_count),
        min_node_count: Some(min_node_count.unwrap_or(0)),
        role: Some(role.into()),
        is_default: Some(true),
        status: Some(status::CREATE_IN_PROGRESS.into()),
        ..Default::default()
    }
}

/// A random UUID in its canonical text form.
pub fn uuid_v4() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A certificate on its way to or from a conductor (upstream's
/// `objects.Certificate`; never stored): a CSR to sign, or a CA asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub cluster_uuid: Option<String>,
    #[serde(default)]
    pub csr: Option<String>,
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default)]
    pub ca_cert_type: Option<String>,
}

/// `YYYY-MM-DDTHH:MM:SS` read digit by digit (every row read has two), or
/// anything else chrono's `NaiveDateTime` reads.
fn parse_stamp(s: &str) -> Result<NaiveDateTime, chrono::ParseError> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let fast = (b.len() == 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':')
        .then(|| {
            chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?
                .and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)
        })
        .flatten();
    match fast {
        Some(t) => Ok(t),
        None => s.parse(),
    }
}

/// Deserialize an optional timestamp as chrono does, faster.
fn stamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<NaiveDateTime>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a timestamp or null")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            parse_stamp(s).map(Some).map_err(E::custom)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(V)
        }
    }
    d.deserialize_option(V)
}

/// `YYYY-MM-DDTHH:MM:SS`, the way timestamps are stored and shown, written
/// digit by digit (this runs for every timestamp of every row read; chrono's
/// general formatter costs several times more).
pub fn iso_seconds(t: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let mut out = String::with_capacity(25);
    let mut digits = |n: u32, width: usize, sep: Option<char>| {
        let mut buf = [b'0'; 4];
        let mut n = n;
        for i in (0..width).rev() {
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        for b in &buf[..width] {
            out.push(char::from(*b));
        }
        if let Some(c) = sep {
            out.push(c);
        }
    };
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.format("%Y-%m-%dT%H:%M:%S").to_string();
    }
    digits(year as u32, 4, Some('-'));
    digits(t.month(), 2, Some('-'));
    digits(t.day(), 2, Some('T'));
    digits(t.hour(), 2, Some(':'));
    digits(t.minute(), 2, Some(':'));
    digits(t.second(), 2, None);
    out
}

#[cfg(test)]
mod iso_tests {
    use chrono::Timelike;

    #[test]
    fn iso_seconds_matches_chrono() {
        for s in [
            "2025-01-06T09:30:00",
            "0999-12-31T23:59:59",
            "2026-12-02T07:08:29",
        ] {
            let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap();
            assert_eq!(super::iso_seconds(&t), s);
            assert_eq!(super::parse_stamp(s).unwrap(), t);
        }
        // What chrono reads, still read; what it refuses, refused.
        let t = super::parse_stamp("2025-01-06T09:30:00.250").unwrap();
        assert_eq!(super::iso_seconds(&t), "2025-01-06T09:30:00");
        assert!(super::parse_stamp("2025-13-06T09:30:00").is_err());
        assert!(super::parse_stamp("2025-01-06 09:30:00x").is_err());
        let c: super::Cluster = serde_json::from_value(
            serde_json::json!({"created_at": "2025-01-06T09:30:00", "updated_at": null}),
        )
        .unwrap();
        assert_eq!(c.created_at, Some(t.with_nanosecond(0).unwrap()));
        assert_eq!(c.updated_at, None);
    }
}
