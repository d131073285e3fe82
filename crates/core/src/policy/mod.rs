//! An oslo.policy-compatible engine with Magnum's default rules.
//!
//! A policy maps rule names (`clustertemplate:create`) to check strings
//! (`rule:admin_or_project_member_deny_cluster_user`) in oslo.policy's
//! grammar: `rule:NAME`, `role:NAME`, generic `KEY:VALUE` checks against the
//! caller's credentials with `%(attr)s` taken from the target, `@` (always),
//! `!` (never), `and`, `or`, `not` and parentheses. Operators override or
//! add rules with a `policy.yaml` or `policy.json` and with files in policy
//! directories; everything else keeps upstream's defaults (`defaults.tsv`,
//! measured on upstream Magnum).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod check;
pub use check::RuleError;
use check::{parse, parse_value, Check};

const DEFAULTS: &str = include_str!("defaults.tsv");

/// How deep `rule:` references may nest before a check is refused.
const MAX_DEPTH: usize = 32;

/// Failures loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("policy file {path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("policy file {path} is not valid YAML")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("policy file {path} is not a mapping of rule names to check strings")]
    NotAMapping { path: PathBuf },
    #[error("policy file {path}: rule {name}")]
    Rule {
        path: PathBuf,
        name: String,
        #[source]
        source: RuleError,
    },
    #[error("Policy {0} has not been registered")]
    NotRegistered(String),
}

/// Python's `str()` of a JSON value, as oslo compares values.
fn py_str(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        other => Some(other.to_string()),
    }
}

/// `%(attr)s` substitution from the target; `None` when an attribute is
/// missing (the check then fails, as oslo's KeyError does).
fn substitute(pattern: &str, target: &Value) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("%(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(")s")?;
        let key = &after[..end];
        let value = target.get(key)?;
        out.push_str(&py_str(value).unwrap_or_else(|| "None".into()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

fn find_in(creds: &Value, path: &[&str], expected: &str) -> bool {
    match path.split_first() {
        None => match creds {
            Value::Array(items) => items.iter().any(|v| find_in(v, &[], expected)),
            other => py_str(other).is_some_and(|s| s == expected),
        },
        Some((key, rest)) => match creds.get(*key) {
            Some(Value::Array(items)) => items.iter().any(|v| find_in(v, rest, expected)),
            Some(v) => find_in(v, rest, expected),
            None => false,
        },
    }
}

/// A literal on the left of a generic check (`'value':%(attr)s`, `True:…`).
fn literal(kind: &str) -> Option<String> {
    let quoted = |q: char| kind.len() >= 2 && kind.starts_with(q) && kind.ends_with(q);
    if quoted('\'') || quoted('"') {
        return Some(kind[1..kind.len() - 1].to_string());
    }
    if kind == "True" || kind == "False" || kind.parse::<f64>().is_ok() {
        return Some(kind.to_string());
    }
    None
}

/// The policy in force: upstream's defaults with the operator's overrides.
#[derive(Debug, Clone)]
pub struct Enforcer {
    rules: HashMap<String, (String, Check)>,
    order: Vec<String>,
}

impl Enforcer {
    /// Upstream Magnum's default rules.
    pub fn with_defaults() -> Enforcer {
        let mut e = Enforcer {
            rules: HashMap::new(),
            order: Vec::new(),
        };
        for line in DEFAULTS.lines().skip(1) {
            let mut cols = line.split('\t');
            if let (Some(name), Some(check)) = (cols.next(), cols.next()) {
                e.set(name, check.to_string(), parse(check));
            }
        }
        e
    }

    fn set(&mut self, name: &str, text: String, check: Check) {
        if self.rules.insert(name.to_string(), (text, check)).is_none() {
            self.order.push(name.to_string());
        }
    }

    /// Defaults overlaid by the operator's policy file (YAML or JSON) and
    /// then by every `*.yaml`/`*.yml`/`*.json` file of each policy
    /// directory, in name order. Missing directories are ignored.
    pub fn load(
        policy_file: Option<&Path>,
        policy_dirs: &[PathBuf],
    ) -> Result<Enforcer, PolicyError> {
        let mut e = Enforcer::with_defaults();
        if let Some(path) = policy_file {
            e.overlay(path)?;
        }
        for dir in policy_dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|x| x.to_str()),
                        Some("yaml" | "yml" | "json")
                    )
                })
                .collect();
            files.sort();
            for file in files {
                e.overlay(&file)?;
            }
        }
        Ok(e)
    }

    fn overlay(&mut self, path: &Path) -> Result<(), PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let path = path.to_path_buf();
        let doc: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|source| PolicyError::Json {
                path: path.clone(),
                source,
            })?
        } else {
            serde_yaml::from_str(&text).map_err(|source| PolicyError::Yaml {
                path: path.clone(),
                source,
            })?
        };
        let map = match doc {
            Value::Object(map) => map,
            Value::Null => return Ok(()),
            _ => return Err(PolicyError::NotAMapping { path }),
        };
        for (name, value) in map {
            let check = match parse_value(&value) {
                Ok(check) => check,
                Err(source) => {
                    let path = path.clone();
                    return Err(PolicyError::Rule { path, name, source });
                }
            };
            let text = match &value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            self.set(&name, text, check);
        }
        Ok(())
    }

    /// Whether the rule named `action` holds for `creds` on `target`.
    pub fn enforce(
        &self,
        action: &str,
        target: &Value,
        creds: &Value,
    ) -> Result<bool, PolicyError> {
        let (_, check) = self
            .rules
            .get(action)
            .ok_or_else(|| PolicyError::NotRegistered(action.to_string()))?;
        Ok(self.eval(check, target, creds, 0))
    }

    /// Evaluate an ad-hoc check string.
    pub fn check_str(&self, check: &str, target: &Value, creds: &Value) -> bool {
        self.eval(&parse(check), target, creds, 0)
    }

    /// The rules in force, (name, check string), defaults first.
    pub fn rules(&self) -> impl Iterator<Item = (&str, &str)> {
        self.order.iter().filter_map(|n| {
            self.rules
                .get(n)
                .map(|(text, _)| (n.as_str(), text.as_str()))
        })
    }

    fn eval(&self, check: &Check, target: &Value, creds: &Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            tracing::warn!("policy rules nest deeper than {MAX_DEPTH}; check refused");
            return false;
        }
        match check {
            Check::Always => true,
            Check::Never => false,
            Check::Rule(name) => match self.rules.get(name) {
                Some((_, inner)) => self.eval(inner, target, creds, depth + 1),
                None => false,
            },
            Check::Role(pattern) => {
                let Some(role) = substitute(pattern, target) else {
                    return false;
                };
                let role = role.to_lowercase();
                creds["roles"].as_array().is_some_and(|roles| {
                    roles
                        .iter()
                        .any(|r| r.as_str().is_some_and(|r| r.to_lowercase() == role))
                })
            }
            Check::Generic { kind, pattern } => {
                let Some(expected) = substitute(pattern, target) else {
                    return false;
                };
                if let Some(lit) = literal(kind) {
                    return lit == expected;
                }
                let path: Vec<&str> = kind.split('.').collect();
                find_in(creds, &path, &expected)
            }
            Check::And(items) => items.iter().all(|c| self.eval(c, target, creds, depth + 1)),
            Check::Or(items) => items.iter().any(|c| self.eval(c, target, creds, depth + 1)),
            Check::Not(inner) => !self.eval(inner, target, creds, depth + 1),
        }
    }
}

/// The default rules as a commented `policy.yaml`, in the manner of
/// `oslopolicy-sample-generator`.
pub fn sample_yaml() -> String {
    let mut out = String::new();
    for line in DEFAULTS.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(check)) = (cols.first(), cols.get(1)) else {
            continue;
        };
        if let Some(ops) = cols.get(3).filter(|o| !o.is_empty()) {
            for op in ops.split(';') {
                out.push_str(&format!("# {op}\n"));
            }
        }
        out.push_str(&format!("#\"{name}\": \"{check}\"\n\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds(roles: &[&str], project: &str, is_admin: bool) -> Value {
        json!({"user_id": "u1", "project_id": project, "roles": roles, "is_admin": is_admin})
    }

    #[test]
    fn grammar_and_precedence() {
        let e = Enforcer::with_defaults();
        let c = creds(&["Member"], "p", false);
        let t = json!({"project_id": "p"});
        assert!(e.check_str("@", &t, &c));
        assert!(e.check_str("", &t, &c));
        assert!(!e.check_str("!", &t, &c));
        assert!(
            e.check_str("role:member", &t, &c),
            "roles compare case-insensitively"
        );
        assert!(e.check_str(
            "role:admin or role:member and project_id:%(project_id)s",
            &t,
            &c
        ));
        assert!(!e.check_str("(role:admin or role:member) and project_id:other", &t, &c));
        assert!(e.check_str("not role:admin", &t, &c));
        assert!(e.check_str("not (role:admin and role:member)", &t, &c));
        assert!(e.check_str("role:admin or not role:reader", &t, &c));
        assert!(
            !e.check_str("project_id:%(missing)s", &t, &c),
            "missing target keys fail"
        );
        assert!(
            e.check_str("'p':%(project_id)s", &t, &c),
            "literal on the left"
        );
        assert!(e.check_str("is_admin:False", &t, &c));
        assert!(!e.check_str("is_admin:True", &t, &c));
        assert!(
            e.check_str("roles:Member", &t, &c),
            "list credentials match by membership"
        );
        assert!(
            !e.check_str("(role:admin", &t, &c),
            "unparsable is never true"
        );
        assert!(!e.check_str("role:admin or", &t, &c));
        assert!(!e.check_str("nonsense", &t, &c));
        assert!(!e.check_str("rule:no_such_rule", &t, &c));
        let nested = json!({"token": {"project": {"id": "p"}}, "roles": []});
        assert!(e.check_str("token.project.id:%(project_id)s", &t, &nested));
    }

    #[test]
    fn magnum_defaults() {
        let e = Enforcer::with_defaults();
        let admin = creds(&["admin", "member", "reader"], "ops", true);
        let member = creds(&["member", "reader"], "p", false);
        let reader = creds(&["reader"], "p", false);
        let own = json!({"project_id": "p", "user_id": "u1"});
        let other = json!({"project_id": "q", "user_id": "u2"});
        // Upstream lets admins do everything in any project, except rotate
        // another project's cluster credentials.
        for (name, _) in e.rules().filter(|(n, _)| n.contains(':')) {
            let allowed = e.enforce(name, &other, &admin).unwrap();
            assert_eq!(allowed, name != "credential:rotate", "admin and {name}");
        }
        assert!(e.enforce("context_is_admin", &json!({}), &admin).unwrap());
        assert!(!e.enforce("context_is_admin", &json!({}), &member).unwrap());
        assert!(e.enforce("clustertemplate:create", &own, &member).unwrap());
        assert!(e.enforce("clustertemplate:get", &own, &member).unwrap());
        assert!(!e.enforce("clustertemplate:get", &other, &member).unwrap());
        assert!(!e.enforce("clustertemplate:publish", &own, &member).unwrap());
        assert!(!e.enforce("quota:create", &own, &member).unwrap());
        assert!(e.enforce("clustertemplate:get", &own, &reader).unwrap());
        assert!(!e.enforce("clustertemplate:create", &own, &reader).unwrap());
        assert!(matches!(
            e.enforce("nope:nope", &own, &admin),
            Err(PolicyError::NotRegistered(_))
        ));
    }

    #[test]
    fn self_reference_does_not_overflow() {
        let dir = std::env::temp_dir().join(format!("policy-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("policy.yaml");
        std::fs::write(&f, "\"a\": \"rule:a\"\n").unwrap();
        let e = Enforcer::load(Some(&f), &[]).unwrap();
        assert!(!e.enforce("a", &json!({}), &json!({})).unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn operator_overrides() {
        let dir = std::env::temp_dir().join(format!("policy-over-{}", std::process::id()));
        let d = dir.join("policy.d");
        std::fs::create_dir_all(&d).unwrap();
        let yaml = dir.join("policy.yaml");
        std::fs::write(
            &yaml,
            "# comment\n\"clustertemplate:create\": \"role:admin\"\n\"custom\": \"role:member\"\n",
        )
        .unwrap();
        let json_file = dir.join("policy.json");
        std::fs::write(
            &json_file,
            r#"{"clustertemplate:create": [["role:member"], ["role:admin"]], "all": []}"#,
        )
        .unwrap();
        std::fs::write(d.join("10.yaml"), "\"custom\": \"!\"\n").unwrap();
        std::fs::write(d.join("20.yaml"), "\"custom\": \"@\"\n").unwrap();
        let member = creds(&["member", "reader"], "p", false);
        let own = json!({"project_id": "p"});

        let e = Enforcer::load(Some(&yaml), &[]).unwrap();
        assert!(!e.enforce("clustertemplate:create", &own, &member).unwrap());
        assert!(e.enforce("custom", &own, &member).unwrap());
        assert!(
            e.enforce("clustertemplate:get", &own, &member).unwrap(),
            "others keep defaults"
        );

        let e = Enforcer::load(Some(&json_file), &[]).unwrap();
        assert!(e.enforce("clustertemplate:create", &own, &member).unwrap());
        assert!(e.enforce("all", &own, &json!({})).unwrap());

        let e = Enforcer::load(Some(&yaml), &[d.clone(), dir.join("absent")]).unwrap();
        assert!(
            e.enforce("custom", &own, &json!({})).unwrap(),
            "later directory files win"
        );

        std::fs::write(&yaml, "- not a mapping\n").unwrap();
        assert!(matches!(
            Enforcer::load(Some(&yaml), &[]),
            Err(PolicyError::NotAMapping { .. })
        ));
        std::fs::write(&yaml, "a: [1]\n").unwrap();
        let e = Enforcer::load(Some(&yaml), &[]).unwrap_err();
        assert!(matches!(&e, PolicyError::Rule { name, .. } if name == "a"));
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            cause.as_deref(),
            Some("a list rule must be a list of lists of checks")
        );
        std::fs::write(&yaml, "{\"a\": ").unwrap();
        assert!(matches!(
            Enforcer::load(Some(&yaml), &[]),
            Err(PolicyError::Json { .. })
        ));
        assert!(matches!(
            Enforcer::load(Some(&dir.join("missing.yaml")), &[]),
            Err(PolicyError::Io { .. })
        ));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sample_lists_every_default() {
        let s = sample_yaml();
        assert!(s.contains(
            "#\"clustertemplate:create\": \"rule:admin_or_project_member_deny_cluster_user\""
        ));
        assert!(s.contains("# POST /v1/clustertemplates"));
    }
}
