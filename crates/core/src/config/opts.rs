//! Typed names of the options the code reads: `conf.get(opts::api::PORT)`
//! instead of `conf.int("api", "port")`. A misspelt name does not compile,
//! and `every_key_is_registered` checks each key against the registry: that
//! the option exists and that its type is read the way the key says.
//!
//! Options read under a section chosen at run time (keystoneauth's groups:
//! `[keystone_auth]`, `[keystone_authtoken]`, a service's own section) are
//! read by name where that section is chosen.

use std::marker::PhantomData;

use super::{Config, OptType, Secret};

/// An option, and how it is read ([`Int`], [`Text`], [`Flag`], [`List`],
/// [`Multi`], [`Hidden`]).
pub struct Opt<K> {
    pub section: &'static str,
    pub name: &'static str,
    kind: PhantomData<K>,
}

impl<K> Clone for Opt<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Opt<K> {}

const fn opt<K>(section: &'static str, name: &'static str) -> Opt<K> {
    Opt {
        section,
        name,
        kind: PhantomData,
    }
}

/// How an option's text is read.
pub trait Kind {
    type Value;
    fn read(conf: &Config, section: &str, name: &str) -> Self::Value;
    /// Whether a registered option of this type (and secrecy) reads so.
    fn fits(ty: &OptType, secret: bool) -> bool;
}

/// An integer (or port); `None` when unset without a default.
pub struct Int;
/// A string; `None` when unset without a default.
pub struct Text;
/// A boolean; false when unset without a default.
pub struct Flag;
/// Comma-separated values.
pub struct List;
/// Every value of a repeatable option.
pub struct Multi;
/// A secret (kept out of logs); `None` when unset or empty.
pub struct Hidden;

impl Kind for Int {
    type Value = Option<i64>;
    fn read(conf: &Config, section: &str, name: &str) -> Option<i64> {
        conf.int(section, name)
    }
    fn fits(ty: &OptType, _: bool) -> bool {
        matches!(ty, OptType::Int { .. } | OptType::Port)
    }
}

impl Kind for Text {
    type Value = Option<String>;
    fn read(conf: &Config, section: &str, name: &str) -> Option<String> {
        conf.str(section, name)
    }
    fn fits(ty: &OptType, secret: bool) -> bool {
        !secret
            && matches!(
                ty,
                OptType::Str | OptType::HostAddress | OptType::IpAddress | OptType::Choice(_)
            )
    }
}

impl Kind for Flag {
    type Value = bool;
    fn read(conf: &Config, section: &str, name: &str) -> bool {
        conf.bool(section, name)
    }
    fn fits(ty: &OptType, _: bool) -> bool {
        matches!(ty, OptType::Bool)
    }
}

impl Kind for List {
    type Value = Vec<String>;
    fn read(conf: &Config, section: &str, name: &str) -> Vec<String> {
        conf.list(section, name)
    }
    fn fits(ty: &OptType, _: bool) -> bool {
        matches!(ty, OptType::List)
    }
}

impl Kind for Multi {
    type Value = Vec<String>;
    fn read(conf: &Config, section: &str, name: &str) -> Vec<String> {
        conf.multi(section, name)
    }
    fn fits(ty: &OptType, _: bool) -> bool {
        matches!(ty, OptType::MultiStr)
    }
}

impl Kind for Hidden {
    type Value = Option<Secret>;
    fn read(conf: &Config, section: &str, name: &str) -> Option<Secret> {
        conf.secret(section, name)
    }
    fn fits(_: &OptType, secret: bool) -> bool {
        secret
    }
}

impl Config {
    /// The value of `opt`, defaults and references applied.
    pub fn get<K: Kind>(&self, opt: Opt<K>) -> K::Value {
        K::read(self, opt.section, opt.name)
    }

    /// Whether a file or an override set `opt`.
    pub fn is_given<K>(&self, opt: Opt<K>) -> bool {
        self.is_set(opt.section, opt.name)
    }
}

macro_rules! keys {
    ($( $module:ident $section:literal { $( $key:ident = $name:literal : $kind:ident ),* $(,)? } )*) => {
        $(
            #[allow(missing_docs)]
            pub mod $module {
                use super::*;
                $( pub const $key: Opt<$kind> = opt($section, $name); )*
            }
        )*

        /// Every key: (section, name, whether a registered type fits).
        #[cfg(test)]
        pub(crate) fn all() -> Vec<(&'static str, &'static str, fn(&OptType, bool) -> bool)> {
            vec![$( $( ($section, $name, <$kind as Kind>::fits as fn(&OptType, bool) -> bool), )* )*]
        }
    };
}

keys! {
    default "DEFAULT" {
        AUTH_STRATEGY = "auth_strategy": Text,
        CONTROL_EXCHANGE = "control_exchange": Text,
        DATA_DIR = "data_dir": Text,
        DEBUG = "debug": Flag,
        HOST = "host": Text,
        REPORT_INTERVAL = "report_interval": Int,
        RPC_RESPONSE_TIMEOUT = "rpc_response_timeout": Int,
        SERVICE_DOWN_TIME = "service_down_time": Int,
        TRANSPORT_URL = "transport_url": Hidden,
        USE_JSON = "use_json": Flag,
    }
    metrics "metrics" {
        LISTEN = "listen": Text,
    }
    oslo_reports "oslo_reports" {
        LOG_DIR = "log_dir": Text,
    }
    api "api" {
        HOST = "host": Text,
        PORT = "port": Int,
        WORKERS = "workers": Int,
        MAX_LIMIT = "max_limit": Int,
        MAX_CONNECTIONS = "max_connections": Int,
        BODY_READ_TIMEOUT = "body_read_timeout": Int,
        ENABLED_SSL = "enabled_ssl": Flag,
        SSL_CERT_FILE = "ssl_cert_file": Text,
        SSL_KEY_FILE = "ssl_key_file": Text,
    }
    certificates "certificates" {
        CERT_MANAGER_TYPE = "cert_manager_type": Text,
        STORAGE_PATH = "storage_path": Text,
    }
    cluster_events "cluster_events" {
        MAX_AGE = "max_age": Int,
        MAX_PER_CLUSTER = "max_per_cluster": Int,
    }
    cinder "cinder" {
        DEFAULT_BOOT_VOLUME_SIZE = "default_boot_volume_size": Int,
    }
    conductor "conductor" {
        TOPIC = "topic": Text,
        OPERATION_LEASE = "operation_lease": Int,
        OPERATION_GRACE = "operation_grace": Int,
        OPERATION_RETRY_DELAY = "operation_retry_delay": Int,
        SYNC_INTERVAL = "sync_interval": Int,
        SWEEP_CONCURRENCY = "sweep_concurrency": Int,
        SYNC_CONCURRENCY = "sync_concurrency": Int,
    }
    database "database" {
        CONNECTION = "connection": Hidden,
        MAX_POOL_SIZE = "max_pool_size": Int,
    }
    drivers "drivers" {
        DISABLED_DRIVERS = "disabled_drivers": List,
        ENABLED_BETA_DRIVERS = "enabled_beta_drivers": List,
        DEFAULT_DRIVER = "default_driver": Text,
        EXTERNAL_DRIVERS = "external_drivers": List,
        EXTERNAL_TOPIC = "external_topic": Text,
        HEAT_ENVIRONMENT_FILES = "heat_environment_files": List,
        VERIFY_CA = "verify_ca": Flag,
    }
    keystone_authtoken "keystone_authtoken" {
        INSECURE = "insecure": Flag,
        TOKEN_CACHE_TIME = "token_cache_time": Int,
        SERVICE_TOKEN_ROLES = "service_token_roles": List,
        SERVICE_TOKEN_ROLES_REQUIRED = "service_token_roles_required": Flag,
    }
    kubernetes "kubernetes" {
        HEALTH_POLLING_INTERVAL = "health_polling_interval": Int,
    }
    oslo_messaging_notifications "oslo_messaging_notifications" {
        DRIVER = "driver": Multi,
        TOPICS = "topics": List,
    }
    oslo_messaging_rabbit "oslo_messaging_rabbit" {
        RABBIT_RETRY_INTERVAL = "rabbit_retry_interval": Int,
    }
    oslo_middleware "oslo_middleware" {
        MAX_REQUEST_BODY_SIZE = "max_request_body_size": Int,
    }
    oslo_policy "oslo_policy" {
        POLICY_FILE = "policy_file": Text,
        POLICY_DIRS = "policy_dirs": List,
    }
    trust "trust" {
        TRUSTEE_DOMAIN_ADMIN_PASSWORD = "trustee_domain_admin_password": Hidden,
        ROLES = "roles": List,
    }
    x509 "x509" {
        RSA_KEY_SIZE = "rsa_key_size": Int,
        TERM_OF_VALIDITY = "term_of_validity": Int,
        ALLOWED_EXTENSIONS = "allowed_extensions": List,
        ALLOWED_KEY_USAGE = "allowed_key_usage": List,
        ALLOW_CA = "allow_ca": Flag,
    }
    quotas "quotas" {
        MAX_CLUSTERS_PER_PROJECT = "max_clusters_per_project": Int,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each key names a registered option of a type it reads correctly.
    #[test]
    fn every_key_is_registered() {
        for (section, name, fits) in all() {
            let def = super::super::find(section, name)
                .unwrap_or_else(|| panic!("[{section}] {name} is not registered"));
            assert!(
                fits(&def.ty, def.secret),
                "[{section}] {name} is {:?} (secret: {}): its key reads it otherwise",
                def.ty,
                def.secret
            );
        }
    }

    #[test]
    fn keys_read_what_names_read() {
        let conf = Config::parse("[api]\nport = 9999\nenabled_ssl = true\n", "test").unwrap();
        assert_eq!(conf.get(api::PORT), Some(9999));
        assert!(conf.get(api::ENABLED_SSL));
        assert_eq!(conf.get(api::MAX_LIMIT), conf.int("api", "max_limit"));
        assert!(conf.is_given(api::PORT) && !conf.is_given(api::HOST));
    }
}
