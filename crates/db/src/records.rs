//! Rows as JSON objects, driven by the schema declaration: any table's row
//! decodes into a map keyed by column name (JSON-encoded text columns
//! parsed), and any object's fields encode into the column values of an
//! `INSERT`/`UPDATE`. Domain structs convert to and from these maps with
//! serde, so a new table needs no hand-written row type.

use chrono::NaiveDateTime;
use sea_query::{Alias, InsertStatement, Query, SelectStatement, SimpleExpr, Value};
use serde_json::{Map, Value as Json};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::schema::{ColType, Column, Table};
use crate::DbError;

/// A table and which of its text columns hold JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapping {
    pub table: &'static Table,
    pub json: &'static [&'static str],
}

/// One column's value as read, handed to a struct's deserializer as it is:
/// JSON text is parsed straight into the field's own type (no JSON tree
/// built and then converted), numbers, booleans and strings go as they are
/// (a string is moved out, not copied).
enum Cell {
    Int(i32),
    Bool(bool),
    Str(std::cell::Cell<String>),
    Json(String),
}

impl<'de> serde::de::IntoDeserializer<'de, serde_json::Error> for &'de Cell {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::de::Deserializer<'de> for &'de Cell {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        match self {
            Cell::Int(n) => visitor.visit_i64((*n).into()),
            Cell::Bool(b) => visitor.visit_bool(*b),
            Cell::Str(s) => visitor.visit_string(s.take()),
            Cell::Json(text) => serde_json::Deserializer::from_str(text).deserialize_any(visitor),
        }
    }

    /// NULL columns are never handed over, so every value is `Some`.
    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        match self {
            Cell::Json(text) => {
                serde_json::Deserializer::from_str(text).deserialize_option(visitor)
            }
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_map<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        match self {
            Cell::Json(text) => serde_json::Deserializer::from_str(text).deserialize_map(visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_seq<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        match self {
            Cell::Json(text) => serde_json::Deserializer::from_str(text).deserialize_seq(visitor),
            other => other.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct tuple
        tuple_struct struct enum identifier ignored_any
    }
}

/// The value of column `i` of a row (`None` for NULL). Columns are read by
/// position: every select lists its table's columns in declaration order
/// (see [`select`]), so no column is looked up by name.
fn cell<'r, R>(row: &'r R, m: &Mapping, i: usize, c: &Column) -> Result<Option<Cell>, DbError>
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
    Ok(match c.ty {
        ColType::Serial | ColType::Int => row.try_get::<Option<i32>, _>(i)?.map(Cell::Int),
        ColType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Cell::Bool),
        ColType::DateTime => row
            .try_get::<Option<NaiveDateTime>, _>(i)?
            .map(|t| Cell::Str(magnum_core::objects::iso_seconds(&t).into())),
        ColType::Varchar(_) | ColType::Text => {
            let text = row.try_get::<Option<String>, _>(i)?;
            if m.json.contains(&c.name) {
                text.map(Cell::Json)
            } else {
                text.map(|t| Cell::Str(t.into()))
            }
        }
    })
}

/// The value of column `i` of a row, as JSON (`None` for NULL).
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
    let corrupt = |e: serde_json::Error| DbError::Corrupt {
        table: m.table.name,
        column: m.table.columns[i].name,
        reason: e.to_string(),
    };
    Ok(match cell(row, m, i, &m.table.columns[i])? {
        None => None,
        Some(Cell::Int(n)) => Some(Json::from(n)),
        Some(Cell::Bool(b)) => Some(Json::Bool(b)),
        Some(Cell::Str(s)) => Some(Json::String(s.into_inner())),
        Some(Cell::Json(text)) => Some(serde_json::from_str(&text).map_err(corrupt)?),
    })
}

/// The table's column behind each column of a result (selects may list
/// any of a table's columns, in any order), but the last `extra` (the
/// select's own additions); worked out once per result, so rows are then
/// read by position.
pub(crate) fn result_columns<R: Row>(
    row: &R,
    m: &Mapping,
    extra: usize,
) -> Result<Vec<&'static Column>, DbError> {
    use sqlx::Column as _;
    let columns = row.columns();
    columns[..columns.len().saturating_sub(extra)]
        .iter()
        .map(|col| {
            m.table
                .columns
                .iter()
                .find(|c| c.name == col.name())
                .ok_or_else(|| DbError::Corrupt {
                    table: m.table.name,
                    column: "*",
                    reason: format!("a result column {} the table does not have", col.name()),
                })
        })
        .collect()
}

/// Decode one row straight into a serde struct, without building a map
/// first: the row's non-NULL columns are fed to `T`'s deserializer as
/// (name, value) pairs, so NULL (and unselected) columns take the field's
/// default. `columns` come from [`result_columns`], and are the row's from
/// position `start` on.
pub(crate) fn decode_into<'r, R, T>(
    row: &'r R,
    m: &Mapping,
    columns: &[&'static Column],
    start: usize,
) -> Result<T, DbError>
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
    let mut fields = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        match cell(row, m, start + i, c)? {
            // JSON `null` counts as NULL, as in [`from_fields`].
            None => {}
            Some(Cell::Json(text)) if text.trim() == "null" => {}
            Some(v) => fields.push((c.name, v)),
        }
    }
    let de = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(
        fields.iter().map(|(name, cell)| (*name, cell)),
    );
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
            other => Some(Box::new(crate::narrow::json_text(other))),
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

/// `SELECT <these columns> FROM <table>`: rows decode into structs whose
/// other fields keep their defaults.
pub(crate) fn select_only(m: &Mapping, columns: &[&'static str]) -> SelectStatement {
    debug_assert!(columns.iter().all(|c| m.table.has_column(c)));
    Query::select()
        .columns(columns.iter().map(|c| Alias::new(*c)))
        .from(Alias::new(m.table.name))
        .to_owned()
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
    insert_many(m, std::slice::from_ref(fields)).expect("one row")
}

/// One `INSERT` of several objects' fields (a row each, every row stamped
/// with the same `created_at`); `None` for no rows.
pub(crate) fn insert_many(m: &Mapping, rows: &[Map<String, Json>]) -> Option<InsertStatement> {
    let at = crate::now();
    let mut q = Query::insert()
        .into_table(Alias::new(m.table.name))
        .to_owned();
    for (i, fields) in rows.iter().enumerate() {
        let mut values = values(m, fields);
        values.push(("created_at", Value::ChronoDateTime(Some(Box::new(at)))));
        let (cols, vals): (Vec<_>, Vec<_>) = values.into_iter().unzip();
        if i == 0 {
            q.columns(cols.into_iter().map(Alias::new));
        }
        q.values_panic(vals.into_iter().map(SimpleExpr::Value));
    }
    (!rows.is_empty()).then_some(q)
}
