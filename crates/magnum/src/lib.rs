//! The `magnum` program: one binary whose subcommands run the API, the
//! conductor, both at once (`all-in-one`), or manage the database. The
//! upstream program names (`magnum-api`, `magnum-conductor`,
//! `magnum-db-manage`) are thin aliases of the matching subcommand.

mod http;
mod observe;
mod serve;
mod tls;

/// mimalloc rather than the C library's allocator: a page of clusters makes
/// thousands of small allocations, which glibc's malloc served at about a
/// third of a request's instructions, and glibc keeps what a burst of large
/// answers took (per-thread arenas), while mimalloc gives it back.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use magnum_core::config::opts;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use magnum_core::config::Config;

/// Options every program takes, as oslo programs do.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A configuration file; may be repeated, later files win.
    #[arg(long = "config-file", value_name = "PATH", global = true)]
    pub config_file: Vec<PathBuf>,
    /// A directory whose *.conf files are read after the files.
    #[arg(long = "config-dir", value_name = "DIR", global = true)]
    pub config_dir: Vec<PathBuf>,
}

#[derive(Debug, Parser)]
#[command(
    name = "magnum",
    version,
    about = "OpenStack Container Infrastructure Management service"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// API and conductor in one process; with no configuration, on an
    /// embedded SQLite database, without authentication.
    AllInOne(AllInOneArgs),
    /// The REST API.
    Api,
    /// The conductor, which carries out cluster operations.
    Conductor,
    /// Database schema management.
    DbManage {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Print the sample configuration file, every option with its default.
    SampleConfig,
    /// Cluster drivers.
    Driver {
        #[command(subcommand)]
        action: DriverAction,
    },
}

#[derive(Debug, Subcommand)]
enum DriverAction {
    /// List the installed drivers (upstream's `magnum-driver-manage
    /// list-drivers`).
    #[command(alias = "list-drivers")]
    List {
        /// Also the cluster types each driver provides.
        #[arg(short, long)]
        details: bool,
        /// Also where each driver's template is.
        #[arg(short, long)]
        paths: bool,
    },
}

#[derive(Debug, Args)]
struct AllInOneArgs {
    /// Where the embedded database lives when `[database] connection` is not set.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DbAction {
    /// Bring the schema to the newest revision.
    Upgrade {
        /// Target revision; only `head` is supported.
        #[arg(default_value = "head")]
        revision: String,
    },
    /// Print the schema revision.
    Version,
}

/// The upstream program an alias binary stands for.
#[derive(Debug, Clone, Copy)]
pub enum Program {
    Api,
    Conductor,
    DbManage,
    DriverManage,
}

/// Parse the command line as `magnum`, or as an upstream alias, and run.
pub fn main_as(program: Option<Program>) -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = program.or_else(|| {
        let name = args
            .first()
            .map(PathBuf::from)?
            .file_name()?
            .to_str()?
            .to_string();
        match name.as_str() {
            "magnum-api" => Some(Program::Api),
            "magnum-conductor" => Some(Program::Conductor),
            "magnum-db-manage" => Some(Program::DbManage),
            "magnum-driver-manage" => Some(Program::DriverManage),
            _ => None,
        }
    });
    if let Some(program) = program {
        let sub = match program {
            Program::Api => "api",
            Program::Conductor => "conductor",
            Program::DbManage => "db-manage",
            Program::DriverManage => "driver",
        };
        // `magnum-db-manage --config-file X upgrade` == `magnum db-manage upgrade`
        // with the global options anywhere.
        args.insert(1, sub.into());
        args[0] = "magnum".into();
    }
    let cli = Cli::parse_from(args);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("magnum: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// oslo's default configuration files, used when none is given.
fn default_config(args: &ConfigArgs) -> (Vec<PathBuf>, Vec<PathBuf>) {
    if !args.config_file.is_empty() || !args.config_dir.is_empty() {
        return (args.config_file.clone(), args.config_dir.clone());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut candidates = Vec::new();
    if let Some(home) = &home {
        candidates.push((
            home.join(".magnum/magnum.conf"),
            home.join(".magnum/magnum.conf.d"),
        ));
        candidates.push((home.join("magnum.conf"), home.join("magnum.conf.d")));
    }
    candidates.push((
        "/etc/magnum/magnum.conf".into(),
        "/etc/magnum/magnum.conf.d".into(),
    ));
    candidates.push(("/etc/magnum.conf".into(), "/etc/magnum.conf.d".into()));
    if let Some((file, _)) = candidates.iter().find(|(f, _)| f.is_file()) {
        files.push(file.clone());
    }
    if let Some((_, dir)) = candidates.iter().find(|(_, d)| d.is_dir()) {
        dirs.push(dir.clone());
    }
    (files, dirs)
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<Config> {
    let (files, dirs) = default_config(args);
    let conf = Config::load(&files, &dirs)?;
    Ok(conf)
}

fn runtime(conf: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = conf.get(opts::api::WORKERS).filter(|w| *w > 0) {
        builder.worker_threads(workers as usize);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::SampleConfig = cli.command {
        print!("{}", magnum_core::config::sample());
        return Ok(());
    }
    let conf = load_config(&cli.config)?;
    if let Command::Driver {
        action: DriverAction::List { details, paths },
    } = cli.command
    {
        print!("{}", driver_table(&serve::drivers(&conf), details, paths));
        return Ok(());
    }
    let recent = observe::init_logging(&conf);
    for warning in conf.warnings() {
        tracing::warn!("{warning}");
    }
    let rt = runtime(&conf)?;
    match cli.command {
        Command::AllInOne(a) => rt.block_on(serve::all_in_one(conf, a.data_dir, recent)),
        Command::Api => rt.block_on(serve::api(conf, recent)),
        Command::Conductor => rt.block_on(serve::conductor(conf, recent)),
        Command::DbManage { action } => rt.block_on(db_manage(conf, action)),
        Command::SampleConfig | Command::Driver { .. } => Ok(()),
    }
}

/// The drivers as cliff prints upstream's list: Name, and with `details`
/// one row per cluster type, with `paths` the template path.
fn driver_table(
    registry: &magnum_core::drivers::DriverRegistry,
    details: bool,
    paths: bool,
) -> String {
    let mut header = vec!["Name"];
    if details {
        header.extend(["Server_Type", "OS", "COE"]);
    }
    if paths {
        header.push("Template Path");
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for d in registry.drivers() {
        let path = d.template_path().unwrap_or_else(|| "n/a".into());
        let kinds: Vec<Option<&magnum_core::drivers::ClusterKind>> = if details {
            d.provides().iter().map(Some).collect()
        } else {
            vec![None]
        };
        for k in kinds {
            let mut row = vec![d.name().to_string()];
            if let Some(k) = k {
                row.extend([k.server_type.into(), k.os.into(), k.coe.into()]);
            }
            if paths {
                row.push(path.clone());
            }
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: Vec<String>| {
        format!(
            "|{}|\n",
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!(" {c:<w$} "))
                .collect::<Vec<_>>()
                .join("|")
        )
    };
    let mut out = rule.clone();
    out.push_str(&line(header.iter().map(|h| h.to_string()).collect()));
    out.push_str(&rule);
    for r in rows {
        out.push_str(&line(r));
    }
    out.push_str(&rule);
    out
}

async fn db_manage(conf: Config, action: DbAction) -> anyhow::Result<()> {
    let db = serve::connect_configured(&conf).await?;
    match action {
        DbAction::Upgrade { revision } => {
            if revision != "head" && revision != magnum_db::HEAD_REVISION {
                bail!(
                    "unknown revision {revision}: only `head` ({}) is supported",
                    magnum_db::HEAD_REVISION
                );
            }
            let outcome = db.migrate().await?;
            if outcome.applied.is_empty() {
                println!("database {} already at {}", db.display(), outcome.to);
            } else {
                println!(
                    "database {} upgraded from {} to {} ({})",
                    db.display(),
                    outcome.from.as_deref().unwrap_or("empty"),
                    outcome.to,
                    outcome.applied.join(", ")
                );
            }
        }
        DbAction::Version => {
            println!("{}", db.version().await?.unwrap_or_else(|| "None".into()));
        }
    }
    db.close().await;
    Ok(())
}
