//! Seeing into a running program: its logs (text, or one JSON object a
//! line with `[DEFAULT] use_json`), its metrics (Prometheus text at
//! `GET /metrics` on `[metrics] listen`), and guru meditation reports
//! (written on SIGUSR2 to standard error, or to a new file in
//! `[oslo_reports] log_dir`).
//!
//! What a report or a scrape shows of the program (its database pool, its
//! bus, its conductor, the tasks it runs) is registered in an
//! [`Observer`] as start-up makes each part.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use magnum_core::config::{opts, Config, OptType, OPTIONS};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How many warning and error lines a report shows.
const RECENT_LINES: usize = 50;

/// The last warning and error lines logged, newest last.
#[derive(Clone, Default)]
pub struct Recent(Arc<Mutex<VecDeque<String>>>);

impl Recent {
    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == RECENT_LINES {
            q.pop_front();
        }
        q.push_back(line);
    }

    fn lines(&self) -> Vec<String> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().cloned().collect()
    }
}

/// A field visitor writing `name=value` pairs (the message bare, first).
struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, "{}={value}", field.name());
        }
    }
}

/// Keeps the last warning and error lines (with their spans' fields, as
/// the formatter layer recorded them) in [`Recent`].
struct RecentLayer(Recent);

impl<S> tracing_subscriber::Layer<S> for RecentLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN {
            return;
        }
        let mut line = format!(
            "{} {:>5} {}: ",
            Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            meta.level(),
            meta.target()
        );
        if let Some(scope) = ctx.event_scope(event) {
            use tracing_subscriber::fmt::format::{DefaultFields, JsonFields};
            use tracing_subscriber::fmt::FormattedFields;
            for span in scope.from_root() {
                // The fields as the log's formatter keeps them (no copy of
                // our own for every span: only warnings pay here).
                let ext = span.extensions();
                let fields = ext
                    .get::<FormattedFields<DefaultFields>>()
                    .map(|f| f.fields.as_str())
                    .or_else(|| {
                        ext.get::<FormattedFields<JsonFields>>()
                            .map(|f| f.fields.as_str())
                    })
                    .unwrap_or("");
                let _ = write!(line, "{}{{{fields}}}: ", span.name());
            }
        }
        let mut message = String::new();
        event.record(&mut Fields(&mut message));
        line.push_str(&message);
        self.0.push(line);
    }
}

/// Log to standard error, as text or (`[DEFAULT] use_json`) one JSON
/// object a line carrying its spans' fields; at debug level with
/// `[DEFAULT] debug`, or as `MAGNUM_LOG` says. The last warnings and
/// errors are also kept for reports.
pub fn init_logging(conf: &Config) -> Recent {
    let default = if conf.get(opts::default::DEBUG) {
        "debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAGNUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},sqlx=warn")));
    let recent = Recent::default();
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(RecentLayer(recent.clone()));
    let _ = if conf.get(opts::default::USE_JSON) {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    recent
}

/// What a report or a scrape shows of the program, registered as
/// start-up makes each part.
#[derive(Clone)]
pub struct Observer(Arc<Mutex<Parts>>);

struct Parts {
    program: &'static str,
    started: DateTime<Utc>,
    conf: Config,
    recent: Recent,
    db: Option<magnum_db::Database>,
    bus: Option<(magnum_rpc::Rpc, String)>,
    conductor: Option<magnum_conductor::Conductor>,
    tasks: Vec<String>,
}

impl Observer {
    /// An observer of `program`, answering SIGUSR2 with a report from now
    /// on (before anything else starts: the signal's default would end
    /// the program).
    pub fn install(program: &'static str, conf: &Config, recent: Recent) -> anyhow::Result<Self> {
        let me = Observer(Arc::new(Mutex::new(Parts {
            program,
            started: Utc::now(),
            conf: conf.clone(),
            recent,
            db: None,
            bus: None,
            conductor: None,
            tasks: Vec::new(),
        })));
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut usr2 = signal(SignalKind::user_defined2()).context("cannot handle SIGUSR2")?;
            let reports = me.clone();
            tokio::spawn(async move {
                while usr2.recv().await.is_some() {
                    reports.write_report().await;
                }
            });
            me.task("guru meditation reports on SIGUSR2");
        }
        Ok(me)
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn database(&self, db: &magnum_db::Database) {
        self.parts().db = Some(db.clone());
    }

    /// The bus, and where it is (no password).
    pub fn bus(&self, rpc: &magnum_rpc::Rpc, shown: &str) {
        self.parts().bus = Some((rpc.clone(), shown.to_string()));
    }

    pub fn conductor(&self, c: &magnum_conductor::Conductor) {
        self.parts().conductor = Some(c.clone());
    }

    /// A long-lived task of the program, as a report describes it.
    pub fn task(&self, what: impl Into<String>) {
        self.parts().tasks.push(what.into());
    }

    /// Serve `GET /metrics` on `[metrics] listen` when it is set; the
    /// address it listens on.
    pub async fn serve_metrics(&self, conf: &Config) -> anyhow::Result<Option<String>> {
        let listen = conf.get(opts::metrics::LISTEN).unwrap_or_default();
        let listen = listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("[metrics] listen: cannot listen on {listen}"))?;
        let addr = tcp.local_addr()?.to_string();
        let me = self.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let me = me.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        me.metrics().await,
                    )
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(tcp, app).await {
                tracing::error!("the metrics listener stopped: {e}");
            }
        });
        tracing::info!("metrics at http://{addr}/metrics");
        self.task(format!("metrics listener on http://{addr}/metrics"));
        Ok(Some(addr))
    }

    /// Every metric, in Prometheus' text format.
    async fn metrics(&self) -> String {
        let (program, started, db, bus) = {
            let p = self.parts();
            (p.program, p.started, p.db.clone(), p.bus.clone())
        };
        let mut out = String::with_capacity(16 << 10);
        magnum_core::metrics::render(&mut out);
        let _ = writeln!(
            out,
            "# HELP magnum_build_info The program and its version.\n\
             # TYPE magnum_build_info gauge\n\
             magnum_build_info{{program=\"{program}\",version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        magnum_core::metrics::render_gauge(
            &mut out,
            "process_start_time_seconds",
            "When the program started, in seconds since the Unix epoch.",
            started.timestamp() as f64,
        );
        if let Some(db) = db {
            let pool = db.pool_state();
            let gauges = [
                (
                    "magnum_db_pool_size",
                    "Database connections open (idle or in use).",
                    pool.size,
                ),
                (
                    "magnum_db_pool_idle",
                    "Open database connections waiting in the pool.",
                    pool.idle,
                ),
                (
                    "magnum_db_pool_in_use",
                    "Database connections handed out to statements now.",
                    pool.in_use(),
                ),
                (
                    "magnum_db_pool_max",
                    "The most database connections the pool opens ([database] max_pool_size).",
                    pool.max,
                ),
            ];
            for (name, help, v) in gauges {
                magnum_core::metrics::render_gauge(&mut out, name, help, f64::from(v));
            }
        }
        if let Some((rpc, _)) = bus {
            let up = if rpc.connected().await { 1.0 } else { 0.0 };
            magnum_core::metrics::render_gauge(
                &mut out,
                "magnum_bus_up",
                "Whether the connection to the message bus is up (1) or being re-established (0).",
                up,
            );
        }
        out
    }

    /// The guru meditation report.
    pub async fn report(&self) -> String {
        let (program, started, conf, recent, db, bus, conductor, tasks) = {
            let p = self.parts();
            (
                p.program,
                p.started,
                p.conf.clone(),
                p.recent.clone(),
                p.db.clone(),
                p.bus.clone(),
                p.conductor.clone(),
                p.tasks.clone(),
            )
        };
        let now = Utc::now();
        let mut out = String::with_capacity(32 << 10);
        section(&mut out, "Guru Meditation");
        let _ = writeln!(out, "program = {program}");
        let _ = writeln!(out, "version = magnum {}", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(out, "pid = {}", std::process::id());
        let _ = writeln!(out, "time = {}", now.to_rfc3339());
        let _ = writeln!(
            out,
            "started = {} (up {} s)",
            started.to_rfc3339(),
            (now - started).num_seconds()
        );

        section(&mut out, "Tasks");
        for t in &tasks {
            let _ = writeln!(out, "{t}");
        }
        let rt = tokio::runtime::Handle::current().metrics();
        let _ = writeln!(
            out,
            "runtime: {} worker threads, {} tasks alive, {} queued on the global queue",
            rt.num_workers(),
            rt.num_alive_tasks(),
            rt.global_queue_depth()
        );

        section(&mut out, "Operations held");
        match &conductor {
            None => {
                let _ = writeln!(out, "(no conductor in this program)");
            }
            Some(c) => {
                let held = c.held_operations();
                if held.is_empty() {
                    let _ = writeln!(out, "(none)");
                }
                for h in held {
                    let lease = h
                        .lease_until
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "unknown".into());
                    let _ = writeln!(
                        out,
                        "operation {} {} of cluster {}: attempt {}, owner {}, running since {} ({} s), lease until {lease}",
                        h.operation,
                        h.method,
                        h.cluster,
                        h.attempt,
                        h.owner,
                        h.since.to_rfc3339(),
                        (now - h.since).num_seconds()
                    );
                }
                let (cycles, secs) = magnum_core::metrics::status_sync_summary();
                let _ = writeln!(
                    out,
                    "status sync: {cycles} cycles so far, {secs:.3} s in all"
                );
            }
        }

        section(&mut out, "Database");
        match &db {
            None => {
                let _ = writeln!(out, "(not connected yet)");
            }
            Some(db) => {
                let pool = db.pool_state();
                let _ = writeln!(out, "database = {}", db.display());
                let _ = writeln!(
                    out,
                    "pool: {} connections open ({} in use, {} idle), at most {}",
                    pool.size,
                    pool.in_use(),
                    pool.idle,
                    pool.max
                );
                let _ = writeln!(out, "statements sent = {}", db.statements());
            }
        }

        section(&mut out, "Message bus");
        match &bus {
            None => {
                let _ = writeln!(out, "(none: [DEFAULT] transport_url is not set)");
            }
            Some((rpc, shown)) => {
                let state = if rpc.connected().await {
                    "connected"
                } else {
                    "disconnected, reconnecting"
                };
                let _ = writeln!(out, "bus = {shown}: {state}");
            }
        }

        section(&mut out, "Recent warnings and errors");
        let lines = recent.lines();
        if lines.is_empty() {
            let _ = writeln!(out, "(none)");
        }
        for l in lines {
            let _ = writeln!(out, "{l}");
        }

        section(&mut out, "Configuration");
        configuration(&mut out, &conf);
        out
    }

    /// Write a report to `[oslo_reports] log_dir` (a new file), else to
    /// standard error.
    async fn write_report(&self) {
        let report = self.report().await;
        let (program, dir, json) = {
            let p = self.parts();
            (
                p.program,
                p.conf.get(opts::oslo_reports::LOG_DIR),
                p.conf.get(opts::default::USE_JSON),
            )
        };
        if let Some(dir) = dir.filter(|d| !d.trim().is_empty()) {
            match write_file(&PathBuf::from(dir), program, &report) {
                Ok(path) => {
                    tracing::info!("guru meditation report written to {}", path.display());
                    return;
                }
                Err(e) => tracing::error!(
                    "cannot write the guru meditation report ({e:#}); it goes to standard error"
                ),
            }
        }
        use std::io::Write as _;
        let text = if json {
            // A JSON log stays one object a line: the report is a field.
            let line = serde_json::json!({
                "timestamp": Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                "level": "INFO",
                "fields": {"message": "guru meditation report", "report": report},
                "target": "magnum::observe",
            });
            format!("{line}\n")
        } else {
            report
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

/// A report file named as oslo.reports names them,
/// `<program>_gurumeditation_<YYYYmmddHHMMSS>`, made anew (a suffix when
/// one of that second exists).
fn write_file(dir: &std::path::Path, program: &str, report: &str) -> anyhow::Result<PathBuf> {
    use std::io::Write as _;
    let stem = format!(
        "{program}_gurumeditation_{}",
        Utc::now().format("%Y%m%d%H%M%S")
    );
    for n in 0..1000 {
        let name = if n == 0 {
            stem.clone()
        } else {
            format!("{stem}.{n}")
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(report.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    anyhow::bail!("too many reports in {} this second", dir.display())
}

fn section(out: &mut String, title: &str) {
    let rule = "=".repeat(72);
    let _ = writeln!(out, "{rule}\n==== {title:^62} ====\n{rule}");
}

/// Every registered option with the value in force, secrets as `***`
/// (and in any other option whose value holds one, through a `$name`
/// reference say).
fn configuration(out: &mut String, conf: &Config) {
    let secrets: Vec<String> = OPTIONS
        .iter()
        .filter(|o| o.secret)
        .filter_map(|o| conf.str(o.section, o.name))
        .filter(|v| v.len() >= 4)
        .collect();
    let masked = |mut v: String| {
        for s in &secrets {
            if v.contains(s.as_str()) {
                v = v.replace(s.as_str(), "***");
            }
        }
        v
    };
    let mut sections: Vec<&str> = OPTIONS.iter().map(|o| o.section).collect();
    sections.sort_by_key(|s| (*s != "DEFAULT", *s));
    sections.dedup();
    for s in sections {
        let _ = writeln!(out, "[{s}]");
        for o in OPTIONS.iter().filter(|o| o.section == s) {
            let value = if o.ty == OptType::MultiStr {
                let v = conf.multi(o.section, o.name);
                (!v.is_empty()).then(|| v.join(", "))
            } else {
                conf.str(o.section, o.name)
            };
            let shown = match value {
                None => "None".to_string(),
                Some(v) if o.secret && !v.is_empty() => "***".to_string(),
                Some(v) => masked(v),
            };
            let _ = writeln!(out, "  {} = {shown}", o.name);
        }
    }
}
