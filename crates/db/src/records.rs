//! Rows as JSON objects, driven by the schema declaration: any table's row
//! decodes into a map keyed by column name (JSON-encoded text columns
//! parsed), and any object's fields encode into the column values of an
//! `INSERT`/`UPDATE`. Domain structs convert to and from these maps with
//! serde, so a new table needs no hand-written row type.

use chrono::NaiveDateTime;
use sea_query::{Alias, InsertStatement, Query, SelectStatement, SimpleExpr, Value};
use serde_json::{Map, Value as Json};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::schema::{ColType, Table};
use crate::DbError;

/// A table and which of its text columns hold JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapping {
    pub table: &'static Table,
    pub json: &'static [&'static str],
}

fn ts(t: NaiveDateTime) -> Json {
    Json::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// The value of column `i` of a row, as JSON (`None` for NULL). Columns are
/// read by position: every select lists its table's columns in declaration
/// order (see [`select`]), so no column is looked up by name.
fn column<'r, R>(row: &'r R, m: &Mapping, i: usize) -> Result<Option<Json>, DbError>
where
    R: Row,
    usize: ColumnIndex<R>,
    Option<String>: Decode<'r, R::Database>,
    String: Type<R::Database>,
    Option<i32>: Decode<'r, R::Database>,
    i32: Type<R::Database>,
    Option<bool>: Decode<'r, R::Database>,
    bool: Type<R::Database>,
    Option<NaiveDateTime>: Decode<'r, R::Database>,
    NaiveDateTime: Type<R::Database>,
{
    let c = &m.table.columns[i];
    Ok(match c.ty {
        ColType::Serial | ColType::Int => row.try_get::<Option<i32>, _>(i)?.map(Json::from),
        ColType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Json::Bool),
        ColType::DateTime => row.try_get::<Option<NaiveDateTime>, _>(i)?.map(ts),
        ColType::Varchar(_) | ColType::Text => match row.try_get::<Option<String>, _>(i)? {
            Some(text) if m.json.contains(&c.name) => {
                Some(serde_json::from_str(&text).map_err(|e| DbError::Corrupt {
                    table: m.table.name,
                    column: c.name,
                    reason: e.to_string(),
                })?)
            }
            other => other.map(Json::String),
        },
    })
}

/// Decode one row straight into a serde struct, without building a map
/// first: the row's non-NULL columns are fed to `T`'s deserializer as
/// (name, value) pairs, so NULL columns take the field's default.
pub(crate) fn decode_into<'r, R, T>(row: &'r R, m: &Mapping) -> Result<T, DbError>
where
    T: serde::de::DeserializeOwned,
    R: Row,
    usize: ColumnIndex<R>,
    Option<String>: Decode<'r, R::Database>,
    String: Type<R::Database>,
    Option<i32>: Decode<'r, R::Database>,
    i32: Type<R::Database>,
    Option<bool>: Decode<'r, R::Database>,
    bool: Type<R::Database>,
    Option<NaiveDateTime>: Decode<'r, R::Database>,
    NaiveDateTime: Type<R::Database>,
{
    if row.len() != m.table.columns.len() {
        return Err(DbError::Corrupt {
            table: m.table.name,
            column: "*",
            reason: format!(
                "a row of {} columns where the table has {}",
                row.len(),
                m.table.columns.len()
            ),
        });
    }
    let mut fields = Vec::with_capacity(m.table.columns.len());
    for (i, c) in m.table.columns.iter().enumerate() {
        match column(row, m, i)? {
            None | Some(Json::Null) => {}
            Some(v) => fields.push((c.name, v)),
        }
    }
    let de = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(fields.into_iter());
    T::deserialize(de).map_err(|e| DbError::Corrupt {
        table: m.table.name,
        column: "*",
        reason: e.to_string(),
    })
}

/// Decode one row into a map of column name to JSON value.
pub(crate) fn decode<'r, R>(row: &'r R, m: &Mapping) -> Result<Map<String, Json>, DbError>
where
    R: Row,
    usize: ColumnIndex<R>,
    Option<String>: Decode<'r, R::Database>,
    String: Type<R::Database>,
    Option<i32>: Decode<'r, R::Database>,
    i32: Type<R::Database>,
    Option<bool>: Decode<'r, R::Database>,
    bool: Type<R::Database>,
    Option<NaiveDateTime>: Decode<'r, R::Database>,
    NaiveDateTime: Type<R::Database>,
{
    let mut out = Map::new();
    for (i, c) in m.table.columns.iter().enumerate() {
        out.insert(c.name.to_string(), column(row, m, i)?.unwrap_or(Json::Null));
    }
    Ok(out)
}

/// The stored value of one field, typed by its column.
fn encode(m: &Mapping, ty: ColType, name: &str, v: &Json) -> Value {
    match ty {
        ColType::Serial | ColType::Int => {
            Value::Int(v.as_i64().and_then(|n| i32::try_from(n).ok()))
        }
        ColType::Bool => Value::Bool(v.as_bool()),
        ColType::DateTime => Value::ChronoDateTime(
            v.as_str()
                .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
                .map(Box::new),
        ),
        ColType::Varchar(_) | ColType::Text => Value::String(match v {
            Json::Null => None,
            Json::String(s) if !m.json.contains(&name) => Some(Box::new(s.clone())),
            other => Some(Box::new(other.to_string())),
        }),
    }
}

/// The column values of an object's fields: every column but the row id
/// and the timestamps, which the database layer manages.
pub(crate) fn values(m: &Mapping, fields: &Map<String, Json>) -> Vec<(&'static str, Value)> {
    m.table
        .columns
        .iter()
        .filter(|c| !matches!(c.name, "id" | "created_at" | "updated_at"))
        .map(|c| {
            let v = fields.get(c.name).unwrap_or(&Json::Null);
            (c.name, encode(m, c.ty, c.name, v))
        })
        .collect()
}

/// The column values of just the given fields (columns the table lacks
/// are ignored).
pub(crate) fn some_values(m: &Mapping, fields: &Map<String, Json>) -> Vec<(&'static str, Value)> {
    m.table
        .columns
        .iter()
        .filter(|c| !matches!(c.name, "id" | "created_at" | "updated_at"))
        .filter_map(|c| {
            fields
                .get(c.name)
                .map(|v| (c.name, encode(m, c.ty, c.name, v)))
        })
        .collect()
}

/// A serde struct as a field map.
pub(crate) fn to_fields<T: serde::Serialize>(obj: &T) -> Map<String, Json> {
    match serde_json::to_value(obj) {
        Ok(Json::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A field map as a serde struct; NULL columns count as absent, so they
/// take the field's default.
pub(crate) fn from_fields<T: serde::de::DeserializeOwned>(
    m: &Mapping,
    mut map: Map<String, Json>,
) -> Result<T, DbError> {
    map.retain(|_, v| !v.is_null());
    serde_json::from_value(Json::Object(map)).map_err(|e| DbError::Corrupt {
        table: m.table.name,
        column: "*",
        reason: e.to_string(),
    })
}

/// `SELECT <every column> FROM <table>`.
pub(crate) fn select(m: &Mapping) -> SelectStatement {
    Query::select()
        .columns(m.table.columns.iter().map(|c| Alias::new(c.name)))
        .from(Alias::new(m.table.name))
        .to_owned()
}

/// `INSERT` of an object's fields, stamped with `created_at`.
pub(crate) fn insert(m: &Mapping, fields: &Map<String, Json>) -> InsertStatement {
    let mut values = values(m, fields);
    values.push((
        "created_at",
        Value::ChronoDateTime(Some(Box::new(crate::now()))),
    ));
    let (cols, vals): (Vec<_>, Vec<_>) = values.into_iter().unzip();
    Query::insert()
        .into_table(Alias::new(m.table.name))
        .columns(cols.into_iter().map(Alias::new))
        .values_panic(vals.into_iter().map(SimpleExpr::Value))
        .to_owned()
}
