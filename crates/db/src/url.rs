//! SQLAlchemy database URLs, as `[database] connection` holds them, turned
//! into connection options for sqlx.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::{Backend, DbError};

/// A parsed database URL.
#[derive(Debug, Clone)]
pub enum DbUrl {
    /// `None` is an in-memory database (`sqlite://`).
    Sqlite {
        path: Option<PathBuf>,
    },
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
}

impl DbUrl {
    pub fn backend(&self) -> Backend {
        match self {
            DbUrl::Sqlite { .. } => Backend::Sqlite,
            DbUrl::Postgres(_) => Backend::Postgres,
            DbUrl::MySql(_) => Backend::MySql,
        }
    }

    /// A description safe to log: backend, host, port and database, no password.
    pub fn display(&self) -> String {
        match self {
            DbUrl::Sqlite { path: Some(p) } => format!("sqlite:{}", p.display()),
            DbUrl::Sqlite { path: None } => "sqlite:(memory)".into(),
            DbUrl::Postgres(o) => format!(
                "postgresql://{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            DbUrl::MySql(o) => format!(
                "mysql://{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
        }
    }
}

/// Query parameters SQLAlchemy drivers understand and sqlx does not; they
/// are dropped rather than rejected so an upstream `magnum.conf` works as is.
const SQLALCHEMY_ONLY: [&str; 6] = [
    "charset",
    "plugin",
    "read_default_file",
    "read_default_group",
    "client_encoding",
    "binary_prefix",
];

/// Parse a SQLAlchemy URL: `dialect[+driver]://user:pass@host:port/db?…`.
pub fn parse_url(url: &str) -> Result<DbUrl, DbError> {
    let unsupported = || DbError::UnsupportedUrl(mask(url));
    let (scheme, rest) = url.split_once("://").ok_or_else(unsupported)?;
    let dialect = scheme.split('+').next().unwrap_or("");
    match dialect {
        "sqlite" => {
            // sqlite:///relative, sqlite:////absolute, sqlite:// (memory)
            let path = rest.strip_prefix('/').unwrap_or(rest);
            let path = path.split('?').next().unwrap_or("");
            Ok(DbUrl::Sqlite {
                path: (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path)),
            })
        }
        "postgresql" | "postgres" => {
            let url = rebuild("postgres", rest);
            PgConnectOptions::from_str(&url)
                .map(DbUrl::Postgres)
                .map_err(|_| unsupported())
        }
        "mysql" | "mariadb" => {
            let url = rebuild("mysql", rest);
            MySqlConnectOptions::from_str(&url)
                .map(|o| DbUrl::MySql(o.charset("utf8mb4")))
                .map_err(|_| unsupported())
        }
        _ => Err(unsupported()),
    }
}

fn rebuild(scheme: &str, rest: &str) -> String {
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| !SQLALCHEMY_ONLY.contains(&kv.split('=').next().unwrap_or("")))
        .collect();
    if kept.is_empty() {
        format!("{scheme}://{base}")
    } else {
        format!("{scheme}://{base}?{}", kept.join("&"))
    }
}

/// The URL with its password replaced by `****`.
pub fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        match parse_url("sqlite:////var/lib/magnum/magnum.sqlite").unwrap() {
            DbUrl::Sqlite { path } => {
                assert_eq!(
                    path.unwrap(),
                    PathBuf::from("/var/lib/magnum/magnum.sqlite")
                )
            }
            _ => panic!(),
        }
        match parse_url("sqlite:///magnum.db").unwrap() {
            DbUrl::Sqlite { path } => assert_eq!(path.unwrap(), PathBuf::from("magnum.db")),
            _ => panic!(),
        }
        assert!(matches!(
            parse_url("sqlite://").unwrap(),
            DbUrl::Sqlite { path: None }
        ));
    }

    #[test]
    fn sqlalchemy_drivers_and_params() {
        let u =
            parse_url("mysql+pymysql://magnum:s3cret@db.example:3307/magnum?charset=utf8").unwrap();
        assert_eq!(u.backend(), Backend::MySql);
        assert_eq!(u.display(), "mysql://db.example:3307/magnum");
        let u = parse_url("postgresql+psycopg2://magnum:pw@127.0.0.1/magnum").unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        assert!(!u.display().contains("pw"));
        assert!(parse_url("oracle://x/y").is_err());
        assert!(parse_url("nonsense").is_err());
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask("mysql+pymysql://u:pw@h/db"),
            "mysql+pymysql://u:****@h/db"
        );
        let err = parse_url("oracle://u:topsecret@h/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
