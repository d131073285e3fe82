//! The database schema, declared once and rendered for each backend.
//!
//! The tables, columns, types, nullability, defaults and unique constraints
//! are upstream Magnum's at its alembic head (b3e1cf4a2d5e), so that an
//! upstream database can be served by us and ours by upstream. On MariaDB the
//! rendered DDL is what upstream's own migrations leave behind (character
//! sets included); on PostgreSQL and SQLite it is the nearest equivalent.

use crate::Backend;

#[derive(Debug, Clone, Copy)]
pub enum ColType {
    /// The auto-increment integer primary key.
    Serial,
    Int,
    Varchar(u16),
    Text,
    Bool,
    DateTime,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub nullable: bool,
    pub default: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    pub primary_key: &'static str,
    pub unique: &'static [(&'static str, &'static [&'static str])],
    /// MariaDB character set (upstream's tables differ: utf8mb3 or utf8mb4).
    pub charset: &'static str,
}

impl Table {
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name)
    }
}

const fn col(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        default: None,
    }
}

const fn req(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        default: None,
    }
}

use ColType::*;

const CREATED: Column = col("created_at", DateTime);
const UPDATED: Column = col("updated_at", DateTime);
const ID: Column = req("id", Serial);

pub const ALEMBIC_VERSION: Table = Table {
    name: "alembic_version",
    columns: &[req("version_num", Varchar(32))],
    primary_key: "version_num",
    unique: &[],
    charset: "utf8mb4",
};

pub const CLUSTER: Table = Table {
    name: "cluster",
    columns: &[
        CREATED,
        UPDATED,
        ID,
        col("uuid", Varchar(36)),
        col("name", Varchar(255)),
        col("cluster_template_id", Varchar(255)),
        col("api_address", Varchar(255)),
        col("stack_id", Varchar(255)),
        col("project_id", Varchar(255)),
        col("user_id", Varchar(255)),
        col("status", Varchar(20)),
        col("discovery_url", Varchar(255)),
        col("status_reason", Text),
        col("ca_cert_ref", Varchar(512)),
        col("magnum_cert_ref", Varchar(512)),
        col("create_timeout", Int),
        col("coe_version", Varchar(255)),
        col("container_version", Varchar(255)),
        col("keypair", Varchar(255)),
        col("docker_volume_size", Int),
        col("labels", Text),
        col("master_flavor_id", Varchar(255)),
        col("flavor_id", Varchar(255)),
        col("health_status", Varchar(20)),
        col("health_status_reason", Text),
        col("fixed_network", Varchar(255)),
        col("fixed_subnet", Varchar(255)),
        col("floating_ip_enabled", Bool),
        col("master_lb_enabled", Bool),
        col("etcd_ca_cert_ref", Varchar(512)),
        col("front_proxy_ca_cert_ref", Varchar(512)),
    ],
    primary_key: "id",
    unique: &[("uniq_bay0uuid", &["uuid"])],
    charset: "utf8mb3",
};

pub const CLUSTER_TEMPLATE: Table = Table {
    name: "cluster_template",
    columns: &[
        CREATED,
        UPDATED,
        ID,
        col("uuid", Varchar(36)),
        col("name", Varchar(255)),
        col("flavor_id", Varchar(255)),
        col("keypair_id", Varchar(255)),
        col("image_id", Varchar(255)),
        col("external_network_id", Varchar(255)),
        col("dns_nameserver", Varchar(255)),
        col("apiserver_port", Int),
        col("project_id", Varchar(255)),
        col("user_id", Varchar(255)),
        col("docker_volume_size", Int),
        col("fixed_network", Varchar(255)),
        col("master_flavor_id", Varchar(255)),
        col("cluster_distro", Varchar(255)),
        col("coe", Varchar(255)),
        col("http_proxy", Varchar(255)),
        col("https_proxy", Varchar(255)),
        col("no_proxy", Varchar(255)),
        col("registry_enabled", Bool),
        col("network_driver", Varchar(255)),
        col("labels", Text),
        col("tls_disabled", Bool),
        col("public", Bool),
        Column {
            name: "server_type",
            ty: Varchar(255),
            nullable: true,
            default: Some("vm"),
        },
        col("volume_driver", Varchar(255)),
        col("insecure_registry", Varchar(255)),
        col("docker_storage_driver", Varchar(512)),
        col("master_lb_enabled", Bool),
        col("fixed_subnet", Varchar(255)),
        col("floating_ip_enabled", Bool),
        col("hidden", Bool),
        col("tags", Varchar(255)),
        col("driver", Varchar(255)),
    ],
    primary_key: "id",
    unique: &[("uniq_baymodel0uuid", &["uuid"])],
    charset: "utf8mb3",
};

pub const FEDERATION: Table = Table {
    name: "federation",
    columns: &[
        CREATED,
        UPDATED,
        ID,
        col("project_id", Varchar(255)),
        col("uuid", Varchar(36)),
        col("name", Varchar(255)),
        col("hostcluster_id", Varchar(255)),
        col("member_ids", Text),
        col("status", Varchar(20)),
        col("status_reason", Text),
        col("properties", Text),
    ],
    primary_key: "id",
    unique: &[("uniq_federation0uuid", &["uuid"])],
    charset: "utf8mb4",
};

pub const MAGNUM_SERVICE: Table = Table {
    name: "magnum_service",
    columns: &[
        CREATED,
        UPDATED,
        ID,
        req("report_count", Int),
        col("host", Varchar(255)),
        col("binary", Varchar(255)),
        col("disabled", Bool),
        col("disabled_reason", Varchar(255)),
        col("last_seen_up", DateTime),
        col("forced_down", Bool),
    ],
    primary_key: "id",
    unique: &[("uniq_magnum_service0host0binary", &["host", "binary"])],
    charset: "utf8mb4",
};

pub const NODEGROUP: Table = Table {
    name: "nodegroup",
    columns: &[
        CREATED,
        UPDATED,
        ID,
        req("uuid", Varchar(36)),
        req("name", Varchar(255)),
        req("cluster_id", Varchar(255)),
        req("project_id", Varchar(255)),
        col("docker_volume_size", Int),
        col("labels", Text),
        col("flavor_id", Varchar(255)),
        col("image_id", Varchar(255)),
        col("node_addresses", Text),
        col("node_count", Int),
        col("max_node_count", Int),
        col("min_node_count", Int),
        col("role", Varchar(255)),
        col("is_default", Bool),
        col("stack_id", Varchar(255)),
        col("status", Varchar(20)),
        col("status_reason", Text),
        col("version", Varchar(20)),
        col("node_labels", Text),
        col("node_taints", Text),
    ],
    primary_key: "id",
    unique: &[
        ("uniq_nodegroup0uuid", &["uuid"]),
        ("uniq_nodegroup0cluster_id0name", &["cluster_id", "name"]),
    ],
    charset: "utf8mb4",
};

pub const QUOTAS: Table = Table {
    name: "quotas",
    columns: &[
        ID,
        CREATED,
        UPDATED,
        col("project_id", Varchar(255)),
        col("resource", Varchar(255)),
        req("hard_limit", Int),
    ],
    primary_key: "id",
    unique: &[(
        "uniq_quotas0project_id0resource",
        &["project_id", "resource"],
    )],
    charset: "utf8mb3",
};

pub const X509KEYPAIR: Table = Table {
    name: "x509keypair",
    columns: &[
        ID,
        CREATED,
        UPDATED,
        col("uuid", Varchar(36)),
        col("certificate", Text),
        col("private_key", Text),
        col("project_id", Varchar(255)),
        col("user_id", Varchar(255)),
        col("intermediates", Text),
        col("private_key_passphrase", Text),
    ],
    primary_key: "id",
    unique: &[("uniq_x509keypair0uuid", &["uuid"])],
    charset: "utf8mb3",
};

/// Every table of upstream's head schema, `alembic_version` first.
pub const TABLES: [Table; 8] = [
    ALEMBIC_VERSION,
    CLUSTER,
    CLUSTER_TEMPLATE,
    FEDERATION,
    MAGNUM_SERVICE,
    NODEGROUP,
    QUOTAS,
    X509KEYPAIR,
];

/// Our own tables, beside upstream's: upstream's code never reads them, so
/// an upstream database we take over only gains them. They are created by
/// `db-manage upgrade` whatever the alembic revision, and never recorded in
/// `alembic_version` (upstream's `magnum-db-manage` keeps working).
///
/// `rs_cluster_operation` is the conductors' durable work queue: the API
/// writes each cluster operation here in the same transaction as the
/// cluster's new status, and a conductor claims it under a lease (`owner`,
/// `lease_until`), so no operation is lost when a conductor, the broker or
/// the database restarts.
pub const CLUSTER_OPERATION: Table = Table {
    name: "rs_cluster_operation",
    columns: &[
        ID,
        req("uuid", Varchar(36)),
        req("cluster_uuid", Varchar(36)),
        req("method", Varchar(64)),
        col("args", Text),
        col("context", Text),
        col("owner", Varchar(255)),
        col("lease_until", DateTime),
        req("attempts", Int),
        CREATED,
        UPDATED,
    ],
    primary_key: "id",
    unique: &[("uniq_rs_cluster_operation0uuid", &["uuid"])],
    charset: "utf8mb4",
};

/// `rs_cluster_trust`: the Keystone trustee user and trust made for each
/// cluster (upstream dropped its columns for them from `cluster`).
pub const CLUSTER_TRUST: Table = Table {
    name: "rs_cluster_trust",
    columns: &[
        ID,
        req("cluster_uuid", Varchar(36)),
        col("trustee_user_id", Varchar(255)),
        col("trustee_username", Varchar(255)),
        col("trustee_password", Varchar(255)),
        col("trust_id", Varchar(255)),
        CREATED,
        UPDATED,
    ],
    primary_key: "id",
    unique: &[("uniq_rs_cluster_trust0cluster_uuid", &["cluster_uuid"])],
    charset: "utf8mb4",
};

/// `rs_project_quota`: one row per project that has created a cluster
/// under a quota, holding the project's cluster count. Each create locks
/// its project's row with the `UPDATE` that adds its cluster to the count,
/// after its inserts, and the count decides (see
/// `Database::cluster_create_queued`), so creates of one project take turns
/// for the lock and the commit only and the quota holds however many
/// arrive at once; a cluster destroyed takes itself off. `clusters` is
/// recounted from `cluster` (`counted_at`) when unknown (NULL), older than
/// a minute, or over the limit, so clusters written by other programs
/// (upstream's API or conductor on the same database) are counted within a
/// minute, and at the limit at once.
pub const PROJECT_QUOTA: Table = Table {
    name: "rs_project_quota",
    columns: &[
        req("project_id", Varchar(255)),
        col("clusters", Int),
        col("counted_at", DateTime),
        CREATED,
        UPDATED,
    ],
    primary_key: "project_id",
    unique: &[],
    charset: "utf8mb4",
};

/// `rs_cluster_event`: the history of each cluster and its node groups
/// (`magnum_core::events`): operations queued, claimed, retried and
/// finished, failures with their class, the driver's own events. Paged by
/// cluster (`rs_ix_cluster_event_cluster`); kept for `[cluster_events]
/// max_age` seconds and at most `max_per_cluster` per cluster, pruned by
/// the conductors. A deleted cluster's events stay until pruned by age (so
/// what its delete did can still be read in the table); the API serves
/// them only while the cluster exists.
pub const CLUSTER_EVENT: Table = Table {
    name: "rs_cluster_event",
    columns: &[
        ID,
        req("uuid", Varchar(36)),
        req("cluster_uuid", Varchar(36)),
        col("nodegroup_uuid", Varchar(36)),
        col("operation_uuid", Varchar(36)),
        req("kind", Varchar(32)),
        col("method", Varchar(64)),
        col("status", Varchar(20)),
        col("reason_class", Varchar(32)),
        col("resource", Varchar(255)),
        col("message", Text),
        col("host", Varchar(255)),
        CREATED,
        UPDATED,
    ],
    primary_key: "id",
    unique: &[("uniq_rs_cluster_event0uuid", &["uuid"])],
    charset: "utf8mb4",
};

/// Our own tables (see [`CLUSTER_OPERATION`], [`CLUSTER_TRUST`],
/// [`PROJECT_QUOTA`], [`CLUSTER_EVENT`]). (Databases migrated by an
/// earlier build may also hold `rs_project_lock`, no longer used.)
pub const OWN_TABLES: [Table; 4] = [
    CLUSTER_OPERATION,
    CLUSTER_TRUST,
    PROJECT_QUOTA,
    CLUSTER_EVENT,
];

/// Indexes of ours, named `rs_…`, on upstream's tables (upstream's schema
/// has none of them; they serve queries upstream does not make per
/// request) and on our own: (name, table, columns). `db-manage upgrade`
/// creates the missing ones at any revision; their absence is no error.
pub const OWN_INDEXES: [(&str, &str, &[&str]); 3] = [
    // The quota check counts a project's clusters on every create.
    ("rs_ix_cluster_project_id", "cluster", &["project_id"]),
    // A cluster's events are paged in id order.
    (
        "rs_ix_cluster_event_cluster",
        "rs_cluster_event",
        &["cluster_uuid", "id"],
    ),
    // Pruning by age.
    (
        "rs_ix_cluster_event_created",
        "rs_cluster_event",
        &["created_at"],
    ),
];

/// `CREATE INDEX IF NOT EXISTS` for one of [`OWN_INDEXES`].
pub fn create_index(backend: Backend, (name, table, columns): (&str, &str, &[&str])) -> String {
    let cols: Vec<String> = columns.iter().map(|c| quote(backend, c)).collect();
    format!(
        "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
        quote(backend, name),
        quote(backend, table),
        cols.join(", ")
    )
}

fn quote(backend: Backend, ident: &str) -> String {
    match backend {
        Backend::MySql => format!("`{ident}`"),
        Backend::Postgres | Backend::Sqlite => format!("\"{ident}\""),
    }
}

fn column_type(backend: Backend, ty: ColType) -> String {
    match (backend, ty) {
        (Backend::MySql, Serial) => "int(11) NOT NULL AUTO_INCREMENT".into(),
        (Backend::Postgres, Serial) => "SERIAL NOT NULL".into(),
        (Backend::Sqlite, Serial) => "INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT".into(),
        (Backend::MySql, Int) => "int(11)".into(),
        (_, Int) => "INTEGER".into(),
        (Backend::MySql, Varchar(n)) => format!("varchar({n})"),
        (_, Varchar(n)) => format!("VARCHAR({n})"),
        (Backend::MySql, Text) => "text".into(),
        (_, Text) => "TEXT".into(),
        (Backend::MySql, Bool) => "tinyint(1)".into(),
        (_, Bool) => "BOOLEAN".into(),
        (Backend::MySql, DateTime) => "datetime".into(),
        (Backend::Postgres, DateTime) => "TIMESTAMP WITHOUT TIME ZONE".into(),
        (Backend::Sqlite, DateTime) => "DATETIME".into(),
    }
}

/// `CREATE TABLE` for one table on one backend.
pub fn create_table(backend: Backend, table: &Table) -> String {
    let mut parts = Vec::new();
    for c in table.columns {
        let mut def = format!("{} {}", quote(backend, c.name), column_type(backend, c.ty));
        if !matches!(c.ty, Serial) {
            if !c.nullable {
                def.push_str(" NOT NULL");
            }
            if let Some(d) = c.default {
                def.push_str(&format!(" DEFAULT '{d}'"));
            }
        }
        parts.push(def);
    }
    let pk_is_inline = backend == Backend::Sqlite
        && table
            .columns
            .iter()
            .any(|c| c.name == table.primary_key && matches!(c.ty, Serial));
    if !pk_is_inline {
        parts.push(format!(
            "PRIMARY KEY ({})",
            quote(backend, table.primary_key)
        ));
    }
    for (name, cols) in table.unique {
        let cols: Vec<_> = cols.iter().map(|c| quote(backend, c)).collect();
        parts.push(match backend {
            Backend::MySql => format!("UNIQUE KEY {} ({})", quote(backend, name), cols.join(", ")),
            _ => format!(
                "CONSTRAINT {} UNIQUE ({})",
                quote(backend, name),
                cols.join(", ")
            ),
        });
    }
    let mut sql = format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote(backend, table.name),
        parts.join(",\n  ")
    );
    if backend == Backend::MySql {
        sql.push_str(&format!(
            " ENGINE=InnoDB DEFAULT CHARSET={cs} COLLATE={cs}_general_ci",
            cs = table.charset
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_ddl_reads_like_upstream() {
        let sql = create_table(Backend::MySql, &MAGNUM_SERVICE);
        assert!(sql.contains("`id` int(11) NOT NULL AUTO_INCREMENT"));
        assert!(sql.contains("`report_count` int(11) NOT NULL"));
        assert!(sql.contains("UNIQUE KEY `uniq_magnum_service0host0binary` (`host`, `binary`)"));
        assert!(sql.ends_with("CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"));
        let sql = create_table(Backend::MySql, &CLUSTER_TEMPLATE);
        assert!(sql.contains("`server_type` varchar(255) DEFAULT 'vm'"));
    }

    #[test]
    fn sqlite_primary_key_is_inline() {
        let sql = create_table(Backend::Sqlite, &CLUSTER);
        assert!(sql.contains("\"id\" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT"));
        assert!(!sql.contains("PRIMARY KEY (\"id\")"));
        let sql = create_table(Backend::Sqlite, &ALEMBIC_VERSION);
        assert!(sql.contains("PRIMARY KEY (\"version_num\")"));
    }
}
