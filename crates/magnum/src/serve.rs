//! Starting the services: database connection, API listener, conductor
//! heartbeat, and a clean stop on SIGINT/SIGTERM.

use magnum_core::config::opts;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use magnum_api::{router, AppState};
use magnum_core::cloud::{CloudLookup, NoCloud};
use magnum_core::config::Config;
use magnum_core::policy::Enforcer;
use magnum_db::{Database, PoolSettings};

use crate::observe::{Observer, Recent};

/// The conductor's `binary` name in `magnum_service`, as upstream's.
const CONDUCTOR_BINARY: &str = "magnum-conductor";

/// Connect to `[database] connection`, which must be set.
pub async fn connect_configured(conf: &Config) -> anyhow::Result<Database> {
    let Some(url) = conf.get(opts::database::CONNECTION) else {
        bail!("no database configured: set [database] connection in magnum.conf");
    };
    Ok(Database::connect_with(url.expose(), pool_settings(conf)).await?)
}

/// The pool's bounds: `[database] max_pool_size`, `pool_timeout` and
/// `statement_timeout`.
fn pool_settings(conf: &Config) -> PoolSettings {
    let secs =
        |name: &str, default: i64| conf.int("database", name).unwrap_or(default).max(0) as u64;
    PoolSettings {
        max_connections: conf
            .get(opts::database::MAX_POOL_SIZE)
            .unwrap_or(5)
            .clamp(1, 1000) as u32,
        acquire_timeout: Duration::from_secs(secs("pool_timeout", 2).max(1)),
        statement_timeout: match secs("statement_timeout", 10) {
            0 => None,
            n => Some(Duration::from_secs(n)),
        },
    }
}

/// Connect and insist the schema is current.
async fn connect_current(conf: &Config) -> anyhow::Result<Database> {
    let db = connect_configured(conf).await?;
    db.check_current()
        .await
        .with_context(|| format!("database {} is not ready", db.display()))?;
    Ok(db)
}

/// The default data directory of `all-in-one`.
fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("magnum");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/magnum"),
        None => PathBuf::from("magnum-data"),
    }
}

fn policy(conf: &Config) -> anyhow::Result<Enforcer> {
    let file = conf
        .get(opts::oslo_policy::POLICY_FILE)
        .unwrap_or_else(|| "policy.yaml".into());
    let dirs: Vec<PathBuf> = conf
        .get(opts::oslo_policy::POLICY_DIRS)
        .into_iter()
        .map(PathBuf::from)
        .collect();
    // Relative names are looked up beside the configuration files, as oslo does.
    let resolve = |name: &str| -> Option<PathBuf> {
        let p = PathBuf::from(name);
        if p.is_absolute() {
            return Some(p);
        }
        conf.files()
            .iter()
            .filter_map(|f| f.parent())
            .map(|d| d.join(&p))
            .find(|c| c.exists())
            .or_else(|| p.exists().then_some(p))
    };
    let explicit = conf.is_given(opts::oslo_policy::POLICY_FILE);
    let path = resolve(&file);
    if explicit && path.is_none() {
        bail!("[oslo_policy] policy_file {file} not found");
    }
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|d| resolve(&d.to_string_lossy()))
        .collect();
    let enforcer = Enforcer::load(path.as_deref(), &dirs)?;
    if let Some(p) = &path {
        tracing::info!("policy overrides from {}", p.display());
    }
    Ok(enforcer)
}

fn cloud(_conf: &Config) -> Arc<dyn CloudLookup> {
    tracing::info!(
        "no cloud configured: image, flavor, keypair and network checks are skipped; \
         a template's os_distro comes from its cluster_distro"
    );
    Arc::new(NoCloud)
}

/// The drivers in force: the shipped ones, plus the test cloud driver in
/// test builds (feature `fake-driver`, never in a release build).
pub fn drivers(conf: &Config) -> magnum_core::drivers::DriverRegistry {
    #[allow(unused_mut)]
    let mut extra: Vec<Arc<dyn magnum_core::drivers::Driver>> =
        match magnum_heat::HeatContext::from_conf(conf) {
            Ok(ctx) => magnum_heat::drivers(Arc::new(ctx)),
            Err(e) => {
                tracing::error!("Heat drivers unavailable: {}", magnum_openstack::Chain(&e));
                Vec::new()
            }
        };
    #[cfg(feature = "fake-driver")]
    extra.push(Arc::new(
        magnum_conductor::fake_driver::FakeDriver::from_env(),
    ));
    magnum_core::drivers::registry_with(extra, conf)
}

/// A connection to `[DEFAULT] transport_url`, when set (and shown to
/// `observer`).
async fn bus(conf: &Config, observer: &Observer) -> anyhow::Result<Option<magnum_rpc::Rpc>> {
    let Some(url) = conf.get(opts::default::TRANSPORT_URL) else {
        return Ok(None);
    };
    let exchange = conf
        .get(opts::default::CONTROL_EXCHANGE)
        .unwrap_or_else(|| "magnum".into());
    let retry = conf
        .get(opts::oslo_messaging_rabbit::RABBIT_RETRY_INTERVAL)
        .unwrap_or(1)
        .max(1) as u64;
    let rpc =
        magnum_rpc::Rpc::connect_with(url.expose(), &exchange, Duration::from_secs(retry)).await?;
    let shown = magnum_rpc::parse_transport_url(url.expose())?.display;
    tracing::info!("connected to {shown}");
    observer.bus(&rpc, &shown);
    Ok(Some(rpc))
}

fn conductor_topic(conf: &Config) -> String {
    conf.get(opts::conductor::TOPIC)
        .unwrap_or_else(|| "magnum-conductor".into())
}

/// `[drivers] external_drivers`, checked at start-up of every role: each
/// entry well-formed, and, when any is declared, their conductors on a
/// topic ours do not serve (else ours would take their casts). Whether
/// any is declared.
fn external_drivers(conf: &Config) -> anyhow::Result<bool> {
    use magnum_core::drivers::{external, Driver};
    let declared = external::from_conf(conf)?;
    if declared.is_empty() {
        return Ok(false);
    }
    let topic = external::topic(conf);
    if topic == conductor_topic(conf) {
        bail!(
            "[drivers] external_topic and [conductor] topic are both {topic:?}: the conductors \
             that run the external drivers and ours must serve different topics (give ours \
             another [conductor] topic)"
        );
    }
    let names: Vec<&str> = declared.iter().map(|d| d.name()).collect();
    tracing::info!(
        "external drivers {} are run by the conductors of RPC topic {topic}; this service \
         leaves their clusters to them",
        names.join(", ")
    );
    Ok(true)
}

/// The client of the external drivers' conductors, when any is declared;
/// they can only be reached over a bus.
fn external_client(
    conf: &Config,
    rpc: Option<&magnum_rpc::Rpc>,
) -> anyhow::Result<Option<Arc<dyn magnum_rpc::Client>>> {
    if !external_drivers(conf)? {
        return Ok(None);
    }
    let Some(rpc) = rpc else {
        bail!(
            "[drivers] external_drivers are run by other conductors, reached over RPC: set \
             [DEFAULT] transport_url"
        );
    };
    let client = magnum_rpc::BusClient::new(
        rpc.clone(),
        &magnum_core::drivers::external::topic(conf),
        rpc_timeout(conf),
    );
    Ok(Some(Arc::new(client)))
}

fn rpc_timeout(conf: &Config) -> Duration {
    let secs = conf
        .get(opts::default::RPC_RESPONSE_TIMEOUT)
        .unwrap_or(60)
        .max(1) as u64;
    Duration::from_secs(secs)
}

/// The conductor's background loops, as a report shows them.
fn background_tasks(conf: &Config) -> String {
    let s = magnum_conductor::Settings::from_conf(conf, "");
    format!(
        "conductor loops: sweep of due operations and status sync every {} s, health sync every {} s",
        s.sync_interval.as_secs(),
        s.health_interval.as_secs()
    )
}

/// The conductor of this process.
fn make_conductor(
    conf: &Config,
    db: &Database,
    host: &str,
    rpc: Option<magnum_rpc::Rpc>,
) -> magnum_conductor::Conductor {
    let notifier = magnum_conductor::Notifier::from_conf(conf, host, rpc);
    magnum_conductor::Conductor::new(
        db.clone(),
        drivers(conf),
        magnum_conductor::Settings::from_conf(conf, host),
        notifier,
    )
    .with_trusts(magnum_openstack::trusts::TrustManager::from_conf(conf))
    .with_certs(magnum_certs::CertManager::from_conf(conf))
}

/// How API callers are authenticated: `[DEFAULT] auth_strategy`, whose
/// default is `keystone` except in all-in-one (`noauth`).
fn auth(conf: &Config, default: &str) -> anyhow::Result<Option<Arc<magnum_api::auth::Keystone>>> {
    let strategy = if conf.is_given(opts::default::AUTH_STRATEGY) {
        conf.get(opts::default::AUTH_STRATEGY).unwrap_or_default()
    } else {
        default.to_string()
    };
    match strategy.as_str() {
        "noauth" => {
            tracing::warn!("auth_strategy noauth: callers are trusted by their X-* headers");
            Ok(None)
        }
        "keystone" => {
            let ks =
                magnum_api::auth::Keystone::from_conf(conf).context("auth_strategy keystone")?;
            tracing::info!("tokens are validated by Keystone at {}", ks.identity_url());
            Ok(Some(Arc::new(ks)))
        }
        other => bail!("[DEFAULT] auth_strategy {other:?} is not one of keystone, noauth"),
    }
}

fn state(conf: Config, db: Database, default_auth: &str) -> anyhow::Result<AppState> {
    let policy = policy(&conf)?;
    let keystone = auth(&conf, default_auth)?;
    let drivers = drivers(&conf);
    let cloud: Arc<dyn CloudLookup> = match &keystone {
        Some(_) => {
            tracing::info!("cloud lookups go to the endpoints of each caller's catalog");
            Arc::new(magnum_openstack::catalog::CatalogCloud::from_conf(&conf))
        }
        None => cloud(&conf),
    };
    let trusts = magnum_openstack::trusts::TrustManager::from_conf(&conf);
    let certs = magnum_certs::CertManager::from_conf(&conf);
    let state =
        AppState::new(db, Arc::new(conf), Arc::new(policy), drivers, cloud).with_certs(certs);
    Ok(match keystone {
        Some(ks) => state.with_keystone(ks).with_trusts(trusts),
        None => state,
    })
}

/// Without authentication, whether requests with no identity headers act
/// as the default admin: only for all-in-one on a loopback address (`local`),
/// so that a newcomer's first commands work; elsewhere they have no
/// identity and the policy refuses them (403), as upstream's do. Logged
/// either way.
fn default_identity(state: AppState, local: bool) -> AppState {
    if !matches!(state.auth, magnum_api::AuthMode::NoAuth) {
        return state;
    }
    if local {
        tracing::warn!(
            "no authentication on a loopback address: requests without identity headers act \
             as an admin of project {}",
            magnum_api::context::DEFAULT_PROJECT_ID
        );
    } else {
        tracing::warn!(
            "no authentication: requests without identity headers (X-Roles, X-Project-Id, \
             X-User-Id) are refused (403)"
        );
    }
    state.with_default_identity(local)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("stopping");
}

/// Where the API serves: a bound socket, and TLS when enabled.
struct Listener {
    tcp: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listener {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Bind `[api] host`:`[api] port`, with the TLS configuration read first so
/// a bad certificate stops start-up before anything is announced.
async fn listen(conf: &Config) -> anyhow::Result<Listener> {
    let tls = tls_config(conf)?;
    let host = conf
        .get(opts::api::HOST)
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = conf.get(opts::api::PORT).unwrap_or(9511);
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    Ok(Listener { tcp, tls })
}

/// The host name services report as (`[DEFAULT] host`, else the machine's).
fn host_name(conf: &Config) -> String {
    conf.get(opts::default::HOST)
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Beat `magnum_service` every `report_interval` seconds until stopped.
fn spawn_heartbeat(db: Database, host: String, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = db.service_heartbeat(&host, CONDUCTOR_BINARY).await {
                tracing::warn!("conductor heartbeat failed: {e}");
            }
        }
    })
}

fn report_interval(conf: &Config) -> Duration {
    Duration::from_secs(
        conf.get(opts::default::REPORT_INTERVAL)
            .unwrap_or(10)
            .max(1) as u64,
    )
}

/// The TLS configuration when `[api] enabled_ssl` is set.
fn tls_config(conf: &Config) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    if !conf.get(opts::api::ENABLED_SSL) {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (
        conf.get(opts::api::SSL_CERT_FILE),
        conf.get(opts::api::SSL_KEY_FILE),
    ) else {
        bail!("[api] enabled_ssl needs ssl_cert_file and ssl_key_file");
    };
    Ok(Some(crate::tls::server_config(
        std::path::Path::new(&cert),
        std::path::Path::new(&key),
    )?))
}

/// Serve the API on `listener`, over TLS when `[api] enabled_ssl` is set,
/// with the bounds on clients of `[api]` (see [`crate::http`]).
async fn serve_api(listener: Listener, state: AppState) -> anyhow::Result<()> {
    let Listener { tcp, tls } = listener;
    let limits = crate::http::Limits::from_conf(&state.conf);
    crate::http::serve(tcp, tls, router(state), limits, shutdown_signal()).await;
    Ok(())
}

pub async fn all_in_one(
    conf: Config,
    data_dir: Option<PathBuf>,
    recent: Recent,
) -> anyhow::Result<()> {
    let observer = Observer::install("magnum-all-in-one", &conf, recent)?;
    let (db, where_data) = match conf.get(opts::database::CONNECTION) {
        Some(_) => {
            let db = connect_configured(&conf).await?;
            let shown = db.display().to_string();
            (db, shown)
        }
        None => {
            let dir = data_dir
                .or_else(|| conf.get(opts::default::DATA_DIR).map(PathBuf::from))
                .unwrap_or_else(default_data_dir);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            let file = dir.join("magnum.sqlite");
            let url = format!("sqlite:///{}", file.display());
            let db = Database::connect_with(&url, pool_settings(&conf)).await?;
            (db, format!("{} (SQLite)", file.display()))
        }
    };
    let outcome = db.migrate().await?;
    if !outcome.applied.is_empty() {
        tracing::info!("database migrated to {}", outcome.to);
    }
    observer.database(&db);
    let host = host_name(&conf);
    let heartbeat = spawn_heartbeat(db.clone(), host.clone(), report_interval(&conf));
    observer.task(format!("conductor heartbeat of host {host}"));
    let listener = listen(&conf).await?;
    let addr = listener.tcp.local_addr()?;
    let scheme = listener.scheme();
    observer.serve_metrics(&conf).await?;
    // Conductor work runs in this process; a bus, when configured, only
    // carries notifications.
    let rpc = bus(&conf, &observer).await?;
    let external = external_client(&conf, rpc.as_ref())?;
    let conductor = make_conductor(&conf, &db, &host, rpc);
    let background = conductor.spawn_background();
    observer.conductor(&conductor);
    observer.task(background_tasks(&conf));
    let client = magnum_rpc::LocalClient::new(Arc::new(conductor));
    let conf_json = conf.get(opts::default::USE_JSON);
    let mut state = state(conf, db.clone(), "noauth")?.with_conductor(Arc::new(client));
    if let Some(external) = external {
        state = state.with_external(external);
    }
    let state = default_identity(state, addr.ip().is_loopback());
    let how = match state.auth {
        magnum_api::AuthMode::NoAuth => "no authentication",
        magnum_api::AuthMode::Keystone(_) => "Keystone authentication",
    };
    tracing::info!(
        "magnum all-in-one listening on {scheme}://{addr}/ ; data in {where_data}; {how}"
    );
    observer.task(format!("API listener on {scheme}://{addr}/"));
    if !conf_json {
        // For whoever started it by hand (a JSON log is for machines).
        eprintln!("magnum all-in-one: listening on {scheme}://{addr}/ ; data in {where_data}");
    }
    let served = serve_api(listener, state).await;
    heartbeat.abort();
    background.abort();
    db.close().await;
    served
}

pub async fn api(conf: Config, recent: Recent) -> anyhow::Result<()> {
    let observer = Observer::install("magnum-api", &conf, recent)?;
    let db = connect_current(&conf).await?;
    observer.database(&db);
    let listener = listen(&conf).await?;
    let addr = listener.tcp.local_addr()?;
    let scheme = listener.scheme();
    observer.serve_metrics(&conf).await?;
    let mut state = default_identity(state(conf.clone(), db.clone(), "keystone")?, false);
    let rpc = bus(&conf, &observer).await?;
    if let Some(external) = external_client(&conf, rpc.as_ref())? {
        state = state.with_external(external);
    }
    match rpc {
        Some(rpc) => {
            let client =
                magnum_rpc::BusClient::new(rpc, &conductor_topic(&conf), rpc_timeout(&conf));
            state = state.with_conductor(Arc::new(client));
        }
        None => tracing::warn!(
            "no [DEFAULT] transport_url: operations are queued in the database and wait for a \
             conductor's sweep ([conductor] operation_grace)"
        ),
    }
    tracing::info!(
        "magnum-api listening on {scheme}://{addr}/ ; database {}",
        db.display()
    );
    observer.task(format!("API listener on {scheme}://{addr}/"));
    let served = serve_api(listener, state).await;
    db.close().await;
    served
}

pub async fn conductor(conf: Config, recent: Recent) -> anyhow::Result<()> {
    let observer = Observer::install("magnum-conductor", &conf, recent)?;
    let db = connect_current(&conf).await?;
    observer.database(&db);
    let host = host_name(&conf);
    observer.serve_metrics(&conf).await?;
    tracing::info!("magnum-conductor on host {host}; database {}", db.display());
    external_drivers(&conf)?;
    let rpc = bus(&conf, &observer).await?;
    let conductor = make_conductor(&conf, &db, &host, rpc.clone());
    observer.conductor(&conductor);
    match &rpc {
        Some(rpc) => {
            let topic = conductor_topic(&conf);
            rpc.serve(&topic, &host, Arc::new(conductor.clone()))
                .await?;
            tracing::info!("conductor serving RPC topic {topic} (and {topic}.{host})");
            observer.task(format!("RPC server of topic {topic} (and {topic}.{host})"));
        }
        None => tracing::warn!(
            "no [DEFAULT] transport_url: this conductor takes work from the database queue only"
        ),
    }
    let heartbeat = spawn_heartbeat(db.clone(), host.clone(), report_interval(&conf));
    observer.task(format!("conductor heartbeat of host {host}"));
    let background = conductor.spawn_background();
    observer.task(background_tasks(&conf));
    shutdown_signal().await;
    heartbeat.abort();
    background.abort();
    db.close().await;
    Ok(())
}
