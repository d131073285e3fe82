//! Configuration read the way oslo.config reads `magnum.conf`.
//!
//! Files are INI in oslo's dialect: `[section]` headers, `key = value` or
//! `key: value`, `#`/`;` comments, indented continuation lines (joined with
//! newlines), surrounding quotes stripped, repeated keys (the last wins,
//! except for multi-valued options, which keep every value), later files
//! over earlier ones and `--config-dir` files (by name) after them. Values
//! may refer to other options as `$name` or `${section.name}`.
//!
//! Every option is declared once in [`registry::OPTIONS`]; values are
//! checked against their type when loaded, so a bad value stops start-up
//! with a message naming the section, the key and the file. Unknown options
//! are kept out and reported by [`Config::warnings`]. Secrets never appear
//! in messages or `Debug` output.

pub mod opts;
mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use registry::OPTIONS;

/// The type of an option's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptType {
    Str,
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float,
    Bool,
    /// Comma-separated values.
    List,
    Port,
    HostAddress,
    IpAddress,
    /// A key that may be repeated; every value is kept.
    MultiStr,
    Choice(&'static [&'static str]),
}

impl OptType {
    fn describe(&self) -> String {
        match self {
            OptType::Str => "string".into(),
            OptType::Int { min, max } => match (min, max) {
                (Some(a), Some(b)) => format!("integer, {a} to {b}"),
                (Some(a), None) => format!("integer, at least {a}"),
                (None, Some(b)) => format!("integer, at most {b}"),
                (None, None) => "integer".into(),
            },
            OptType::Float => "floating point".into(),
            OptType::Bool => "boolean".into(),
            OptType::List => "list".into(),
            OptType::Port => "port number".into(),
            OptType::HostAddress => "host address".into(),
            OptType::IpAddress => "IP address".into(),
            OptType::MultiStr => "multi-valued".into(),
            OptType::Choice(c) => format!("one of {}", c.join(", ")),
        }
    }
}

/// One declared option.
#[derive(Debug, Clone, Copy)]
pub struct OptDef {
    pub section: &'static str,
    pub name: &'static str,
    pub ty: OptType,
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub secret: bool,
    /// Older (section, name) spellings oslo also accepts.
    pub deprecated: &'static [(&'static str, &'static str)],
}

/// A secret value: prints as `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

/// Failures reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} not found")]
    MissingFile(PathBuf),
    #[error("configuration directory {0} not found")]
    MissingDir(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    #[error("invalid value {value} for [{section}] {key} in {file}: expected {expected}")]
    InvalidValue {
        section: String,
        key: String,
        file: String,
        /// Quoted, or `****` for secrets.
        value: String,
        expected: String,
    },
}

/// One value as written, and where.
#[derive(Debug, Clone)]
struct Written {
    value: String,
    source: String,
}

fn find(section: &str, name: &str) -> Option<&'static OptDef> {
    OPTIONS
        .iter()
        .find(|o| o.section == section && o.name == name)
}

/// The option a (section, key) of a file sets, by current or older name.
fn resolve(section: &str, key: &str) -> Option<&'static OptDef> {
    find(section, key).or_else(|| {
        OPTIONS
            .iter()
            .find(|o| o.deprecated.iter().any(|(s, n)| *s == section && *n == key))
    })
}

fn normalize_section(s: &str) -> String {
    if s == "DEFAULT" {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn valid_hostname(v: &str) -> bool {
    let v = v.strip_suffix('.').unwrap_or(v);
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Check a value against its type.
fn check(ty: &OptType, v: &str) -> bool {
    let v = v.trim();
    match ty {
        OptType::Str | OptType::List | OptType::MultiStr => true,
        OptType::Int { min, max } => v
            .parse::<i64>()
            .is_ok_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
        OptType::Float => v.parse::<f64>().is_ok(),
        OptType::Bool => parse_bool(v).is_some(),
        OptType::Port => v.parse::<u16>().is_ok(),
        OptType::IpAddress => v.parse::<std::net::IpAddr>().is_ok(),
        OptType::HostAddress => v.parse::<std::net::IpAddr>().is_ok() || valid_hostname(v),
        OptType::Choice(c) => c.contains(&v),
    }
}

/// The configuration in force.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Values by (section, name) of their option, in the order written.
    values: HashMap<(&'static str, &'static str), Vec<Written>>,
    files: Vec<PathBuf>,
    warnings: Vec<String>,
}

impl Config {
    /// Defaults only.
    pub fn defaults() -> Config {
        Config::default()
    }

    /// Read `files`, then the `*.conf` files of each of `dirs` by name.
    pub fn load(files: &[PathBuf], dirs: &[PathBuf]) -> Result<Config, ConfigError> {
        let mut conf = Config::default();
        let mut all = Vec::new();
        for f in files {
            if !f.is_file() {
                return Err(ConfigError::MissingFile(f.clone()));
            }
            all.push(f.clone());
        }
        for d in dirs {
            let entries = std::fs::read_dir(d).map_err(|_| ConfigError::MissingDir(d.clone()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
                .collect();
            found.sort();
            all.extend(found);
        }
        for path in all {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            conf.read(&text, &path.display().to_string())?;
            conf.files.push(path);
        }
        Ok(conf)
    }

    /// Parse one file's text (`source` names it in messages).
    pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let mut conf = Config::default();
        conf.read(text, source)?;
        Ok(conf)
    }

    fn read(&mut self, text: &str, source: &str) -> Result<(), ConfigError> {
        let mut section: Option<String> = None;
        let mut pending: Option<(String, Vec<String>, usize)> = None;
        let mut unknown_sections: Vec<String> = Vec::new();
        let err = |line: usize, message: String| ConfigError::Parse {
            file: source.to_string(),
            line,
            message,
        };
        let mut assignments: Vec<(String, String, String, usize)> = Vec::new();
        let mut flush = |pending: &mut Option<(String, Vec<String>, usize)>,
                         section: &Option<String>| {
            if let (Some((key, lines, at)), Some(sec)) = (pending.take(), section) {
                assignments.push((sec.clone(), key, lines.join("\n"), at));
            }
        };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                flush(&mut pending, &section);
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match &mut pending {
                    Some((_, lines, _)) => lines.push(line.trim_start().to_string()),
                    None => {
                        if !line.trim_start().starts_with(['#', ';']) {
                            return Err(err(
                                n,
                                format!("unexpected continuation line: {}", line.trim()),
                            ));
                        }
                    }
                }
                continue;
            }
            flush(&mut pending, &section);
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(n, format!("invalid section header: {line}")))?;
                section = Some(normalize_section(name));
                continue;
            }
            if line.starts_with(['#', ';']) {
                continue;
            }
            if section.is_none() {
                return Err(err(n, "an option before any [section] header".into()));
            }
            let colon = line.find(':');
            let equal = line.find('=');
            let split = match (colon, equal) {
                (None, None) => return Err(err(n, format!("not a key = value line: {line}"))),
                (Some(c), None) => c,
                (None, Some(e)) => e,
                (Some(c), Some(e)) => c.min(e),
            };
            let key = line[..split].trim();
            if key.is_empty() {
                return Err(err(n, "an empty key".into()));
            }
            let mut value = line[split + 1..].trim().to_string();
            let quoted = value.len() >= 2
                && (value.starts_with('"') || value.starts_with('\''))
                && value.ends_with(&value[..1]);
            if quoted {
                value = value[1..value.len() - 1].to_string();
            }
            pending = Some((key.replace('-', "_"), vec![value], n));
        }
        flush(&mut pending, &section);

        for (sec, key, value, line) in assignments {
            let Some(def) = resolve(&sec, &key) else {
                if !OPTIONS.iter().any(|o| o.section == sec) {
                    if !unknown_sections.contains(&sec) {
                        self.warnings
                            .push(format!("unknown section [{sec}] in {source} ignored"));
                        unknown_sections.push(sec);
                    }
                } else {
                    self.warnings.push(format!(
                        "unknown option [{sec}] {key} in {source} (line {line}) ignored"
                    ));
                }
                continue;
            };
            self.store(def, value, source)?;
        }
        Ok(())
    }

    fn store(
        &mut self,
        def: &'static OptDef,
        value: String,
        source: &str,
    ) -> Result<(), ConfigError> {
        let expanded = self.interpolate(def.section, &value);
        if !check(&def.ty, &expanded) {
            return Err(ConfigError::InvalidValue {
                section: def.section.to_string(),
                key: def.name.to_string(),
                file: source.to_string(),
                value: if def.secret {
                    "****".into()
                } else {
                    format!("{value:?}")
                },
                expected: def.ty.describe(),
            });
        }
        let slot = self.values.entry((def.section, def.name)).or_default();
        if def.ty != OptType::MultiStr {
            slot.clear();
        }
        slot.push(Written {
            value,
            source: source.to_string(),
        });
        Ok(())
    }

    /// Set an option (tests, command-line overrides); checked like file values.
    pub fn set(&mut self, section: &str, name: &str, value: &str) -> Result<(), ConfigError> {
        let def = find(section, name).ok_or_else(|| ConfigError::InvalidValue {
            section: section.into(),
            key: name.into(),
            file: "override".into(),
            value: String::new(),
            expected: "a known option".into(),
        })?;
        self.store(def, value.to_string(), "override")
    }

    /// The raw text of an option: the last value written, else the default.
    fn raw(&self, section: &str, name: &str) -> Option<String> {
        let def = find(section, name);
        debug_assert!(def.is_some(), "option [{section}] {name} is not registered");
        let def = def?;
        match self
            .values
            .get(&(def.section, def.name))
            .and_then(|v| v.last())
        {
            Some(w) => Some(w.value.clone()),
            None => def.default.map(str::to_string),
        }
    }

    /// `$name`, `${name}` and `${section.name}` references resolved; `$$` is `$`.
    fn interpolate(&self, section: &str, text: &str) -> String {
        self.interpolate_depth(section, text, 0)
    }

    fn interpolate_depth(&self, section: &str, text: &str, depth: usize) -> String {
        if !text.contains('$') || depth > 8 {
            return text.to_string();
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            }
            let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) => (&inner[..end], &inner[end + 1..]),
                    None => {
                        out.push('$');
                        rest = after;
                        continue;
                    }
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            let (sec, opt) = match name.split_once('.') {
                Some((s, o)) => (s, o),
                None if find(section, name).is_some() => (section, name),
                None => ("DEFAULT", name),
            };
            match find(sec, opt) {
                Some(def) if !name.is_empty() => {
                    let v = self
                        .values
                        .get(&(def.section, def.name))
                        .and_then(|v| v.last())
                        .map(|w| w.value.clone())
                        .or_else(|| def.default.map(str::to_string))
                        .unwrap_or_default();
                    out.push_str(&self.interpolate_depth(def.section, &v, depth + 1));
                }
                _ => {
                    out.push('$');
                    out.push_str(&rest[i + 1..rest.len() - tail.len()]);
                }
            }
            rest = tail;
        }
        out.push_str(rest);
        out
    }

    /// A string option, defaults and references applied.
    pub fn str(&self, section: &str, name: &str) -> Option<String> {
        self.raw(section, name)
            .map(|v| self.interpolate(section, &v))
    }

    pub fn int(&self, section: &str, name: &str) -> Option<i64> {
        self.str(section, name).and_then(|v| v.trim().parse().ok())
    }

    pub fn float(&self, section: &str, name: &str) -> Option<f64> {
        self.str(section, name).and_then(|v| v.trim().parse().ok())
    }

    /// A boolean option; false when unset without a default.
    pub fn bool(&self, section: &str, name: &str) -> bool {
        self.str(section, name)
            .and_then(|v| parse_bool(&v))
            .unwrap_or(false)
    }

    /// A list option: comma-separated, trimmed, empty items dropped.
    pub fn list(&self, section: &str, name: &str) -> Vec<String> {
        self.str(section, name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every value of a multi-valued option, in order.
    pub fn multi(&self, section: &str, name: &str) -> Vec<String> {
        let Some(def) = find(section, name) else {
            debug_assert!(false, "option [{section}] {name} is not registered");
            return Vec::new();
        };
        match self.values.get(&(def.section, def.name)) {
            Some(v) => v
                .iter()
                .map(|w| self.interpolate(section, &w.value))
                .collect(),
            None => def.default.map(|d| vec![d.to_string()]).unwrap_or_default(),
        }
    }

    /// A secret option.
    pub fn secret(&self, section: &str, name: &str) -> Option<Secret> {
        self.str(section, name)
            .filter(|v| !v.is_empty())
            .map(Secret)
    }

    /// Whether a file or an override set the option.
    pub fn is_set(&self, section: &str, name: &str) -> bool {
        find(section, name).is_some_and(|d| self.values.contains_key(&(d.section, d.name)))
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Unknown sections and options met while reading.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where an option's value came from (a file, `override`), if set.
    pub fn source(&self, section: &str, name: &str) -> Option<&str> {
        let def = find(section, name)?;
        self.values
            .get(&(def.section, def.name))
            .and_then(|v| v.last())
            .map(|w| w.source.as_str())
    }
}

/// `magnum.conf.sample`: every option with its help, type and default.
pub fn sample() -> String {
    let mut sections: Vec<&str> = Vec::new();
    for o in OPTIONS {
        if !sections.contains(&o.section) {
            sections.push(o.section);
        }
    }
    sections.sort_by_key(|s| (*s != "DEFAULT", *s));
    let mut out = String::from(
        "# magnum.conf: every option Magnum reads, with its default.\n\
         # Generated from the option registry (`magnum sample-config`); do not edit.\n",
    );
    for section in sections {
        out.push_str(&format!("\n[{section}]\n"));
        for o in OPTIONS.iter().filter(|o| o.section == section) {
            out.push_str(&format!("\n# {}\n# ({})", o.help, o.ty.describe()));
            if o.secret {
                out.push_str(" (secret)");
            }
            out.push('\n');
            for (s, n) in o.deprecated {
                out.push_str(&format!("# Also read as [{s}] {n}.\n"));
            }
            out.push_str(&format!(
                "#{} = {}\n",
                o.name,
                o.default.unwrap_or("<None>")
            ));
        }
    }
    out
}

/// Whether `path` holds the current sample.
pub fn sample_is_current(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t == sample())
}

#[cfg(test)]
mod tests;
