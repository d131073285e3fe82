//! Upstream's narrow tables: `cluster`, `cluster_template`, `quotas` and
//! `x509keypair` are `utf8mb3` on MariaDB (see `schema.rs`), which holds
//! no character beyond U+FFFF, while our connection is `utf8mb4`. One rule
//! for every backend, so that all three answer alike:
//!
//! - a lookup by a value such a column cannot hold matches no row (MariaDB
//!   refuses the comparison itself with "Illegal mix of collations"; the
//!   statement is answered as matching nothing, see [`cannot_match`]);
//! - such a value is not stored in such a column: `INSERT` and `UPDATE`
//!   refuse it before it is sent ([`DbError::ValueRejected`]), on SQLite
//!   and PostgreSQL too, so no backend keeps what another cannot;
//! - JSON columns (labels, …) keep every character: those beyond U+FFFF are
//!   written as `\ud83d\ude00` escapes, as upstream's `json.dumps` writes
//!   them, which every character set holds ([`json_text`]).

use sea_query::{InsertStatement, SimpleExpr, UpdateStatement, Value};

use crate::schema::{OWN_TABLES, TABLES};
use crate::DbError;

/// The first character of `s` a `utf8mb3` column cannot hold.
pub(crate) fn beyond_bmp(s: &str) -> Option<char> {
    s.chars().find(|c| u32::from(*c) > 0xFFFF)
}

/// Whether the table (by name) holds only `utf8mb3` text on MariaDB.
fn narrow(table: &str) -> bool {
    TABLES
        .iter()
        .chain(OWN_TABLES.iter())
        .any(|t| t.name == table && t.charset == "utf8mb3")
}

/// The table a rendered `INSERT INTO "t" …` or `UPDATE "t" …` writes.
fn target(sql: &str) -> Option<&str> {
    let rest = sql
        .strip_prefix("INSERT INTO ")
        .or_else(|| sql.strip_prefix("UPDATE "))?;
    let quote = rest.chars().next().filter(|c| matches!(c, '"' | '`'))?;
    let rest = &rest[1..];
    rest.find(quote).map(|end| &rest[..end])
}

fn refused(table: &str, column: &str, c: char) -> DbError {
    DbError::ValueRejected(format!(
        "{table}.{column} cannot hold the character U+{:04X}: its character set (utf8mb3, \
         as upstream's schema has it) holds no characters beyond U+FFFF",
        u32::from(c)
    ))
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::String(Some(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// What a statement would store that its table cannot hold.
pub(crate) trait Storable {
    /// `sql` and `values` are the statement as rendered.
    fn unstorable(&self, _sql: &str, _values: &[Value]) -> Option<DbError> {
        None
    }
}

impl Storable for sea_query::SelectStatement {}
impl Storable for sea_query::DeleteStatement {}

impl Storable for InsertStatement {
    /// Every value of an `INSERT` is stored; the column list names them.
    fn unstorable(&self, sql: &str, values: &[Value]) -> Option<DbError> {
        let table = target(sql).filter(|t| narrow(t))?;
        let (i, c) = values
            .iter()
            .enumerate()
            .find_map(|(i, v)| text(v).and_then(beyond_bmp).map(|c| (i, c)))?;
        let columns = sql
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(cols, _)| cols)
            .unwrap_or_default();
        let column = columns
            .split(',')
            .nth(i)
            .map(|c| c.trim().trim_matches(['"', '`']))
            .unwrap_or("?");
        Some(refused(table, column, c))
    }
}

impl Storable for UpdateStatement {
    /// The `SET` values are stored; those of `WHERE` are only compared.
    fn unstorable(&self, sql: &str, _values: &[Value]) -> Option<DbError> {
        let table = target(sql).filter(|t| narrow(t))?;
        self.get_values()
            .iter()
            .find_map(|(column, expr)| match &**expr {
                SimpleExpr::Value(v) => text(v)
                    .and_then(beyond_bmp)
                    .map(|c| refused(table, &column.to_string(), c)),
                _ => None,
            })
    }
}

/// MariaDB/MySQL's refusal to compare a `utf8mb3` column with a value
/// holding characters beyond it (errors 1267, 1270, 1271: "Illegal mix of
/// collations"): no row can hold such a value, so the statement matches
/// nothing.
pub(crate) fn cannot_match(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|e| matches!(e.number(), 1267 | 1270 | 1271))
}

/// A JSON column's text: as `serde_json` writes it, with every character
/// beyond U+FFFF as a pair of `\u` escapes (what Python's `json.dumps`
/// writes), so a `utf8mb3` column holds it and it reads back the same.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if beyond_bmp(&text).is_none() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if u32::from(c) > 0xFFFF {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Backend;
    use sea_query::{Alias, Expr, Query};

    fn render<S: crate::Statement>(s: &S) -> (String, Vec<Value>) {
        let (sql, values) = s.render(Backend::Postgres);
        (sql, values.0 .0)
    }

    #[test]
    fn json_escapes_only_what_utf8mb3_lacks_and_reads_back() {
        let v = serde_json::json!({"a": "😀 ü", "b": ["x"]});
        let text = json_text(&v);
        assert_eq!(text, r#"{"a":"\ud83d\ude00 ü","b":["x"]}"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }

    #[test]
    fn inserts_into_narrow_tables_refuse_what_they_cannot_hold() {
        let q = Query::insert()
            .into_table(Alias::new("cluster_template"))
            .columns([Alias::new("uuid"), Alias::new("name")])
            .values_panic(["u".into(), "smile 😀".into()])
            .to_owned();
        let (sql, values) = render(&q);
        let Some(DbError::ValueRejected(why)) = q.unstorable(&sql, &values) else {
            panic!("stored");
        };
        assert!(why.starts_with("cluster_template.name cannot hold the character U+1F600"));
        // Node groups are utf8mb4: they keep it.
        let q = Query::insert()
            .into_table(Alias::new("nodegroup"))
            .columns([Alias::new("name")])
            .values_panic(["😀".into()])
            .to_owned();
        let (sql, values) = render(&q);
        assert!(q.unstorable(&sql, &values).is_none());
    }

    #[test]
    fn updates_check_what_they_set_not_what_they_compare() {
        let set = Query::update()
            .table(Alias::new("cluster"))
            .value(Alias::new("status_reason"), "😀")
            .and_where(Expr::col(Alias::new("uuid")).eq("u"))
            .to_owned();
        let (sql, values) = render(&set);
        assert!(matches!(
            set.unstorable(&sql, &values),
            Some(DbError::ValueRejected(_))
        ));
        let compare = Query::update()
            .table(Alias::new("cluster"))
            .value(Alias::new("status"), "x")
            .and_where(Expr::col(Alias::new("uuid")).eq("😀"))
            .to_owned();
        let (sql, values) = render(&compare);
        assert!(compare.unstorable(&sql, &values).is_none());
    }
}
