//! Statements rendered once per shape.
//!
//! sea-query builds a statement's SQL text anew on every call: a select of
//! every column of `cluster` allocates each column's name, then formats and
//! quotes it, and that was a fifth of a cluster show's instructions
//! (callgrind). The hottest reads have a handful of shapes each (by uuid or
//! by name, under one of the tenancy filters, for N uuids), so their text is
//! rendered the first time a shape is asked for and kept in the pool; each
//! request then brings only its values.
//!
//! The values must be those sea-query would have bound, in its order. Debug
//! builds (every test) render the statement on every call as well and
//! compare both, so a shape whose values drift from its statement fails
//! the first test that runs it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sea_query::{SelectStatement, Value, Values};
use sea_query_binder::SqlxValues;

use crate::{Database, Statement};

/// Which statement, and which of its variants: each distinct SQL text a
/// statement can have needs its own key.
pub(crate) type Shape = (&'static str, u32);

/// The SQL text of each shape rendered so far by a pool (one backend).
#[derive(Debug, Clone, Default)]
pub(crate) struct Shapes(Arc<RwLock<HashMap<Shape, Arc<str>>>>);

/// A statement ready to run: its SQL text and the values it binds.
pub(crate) struct Sql {
    pub text: Arc<str>,
    pub values: SqlxValues,
}

impl Database {
    /// The statement `build` makes, with its text rendered once per
    /// `shape` and `values` bound (see the module's documentation).
    pub(crate) fn shaped(
        &self,
        shape: Shape,
        values: Vec<Value>,
        build: impl FnOnce() -> SelectStatement,
    ) -> Sql {
        self.counted(1);
        let known = self
            .shapes
            .0
            .read()
            .ok()
            .and_then(|m| m.get(&shape).cloned());
        if cfg!(debug_assertions) || known.is_none() {
            let (text, built) = build().render(self.backend());
            assert_eq!(
                built.0 .0, values,
                "shape {shape:?}: the values given are not the statement's"
            );
            if let Some(known) = &known {
                assert_eq!(&**known, text, "shape {shape:?} renders two texts");
            }
            let text: Arc<str> = text.into();
            if known.is_none() {
                if let Ok(mut m) = self.shapes.0.write() {
                    m.insert(shape, text.clone());
                }
            }
            return Sql {
                text,
                values: SqlxValues(Values(values)),
            };
        }
        Sql {
            text: known.expect("rendered above otherwise"),
            values: SqlxValues(Values(values)),
        }
    }
}

/// A shape's variant and values for the tenancy filter
/// (`cluster_templates::tenant_filter`) of `ctx`: none, the project, the
/// user, or neither.
pub(crate) fn tenancy(ctx: &magnum_core::RequestContext) -> (u32, Vec<Value>) {
    if ctx.is_admin && ctx.all_tenants {
        return (0, Vec::new());
    }
    match (&ctx.project_id, &ctx.user_id) {
        (Some(project), _) => (1, vec![project.as_str().into()]),
        (None, Some(user)) => (2, vec![user.as_str().into()]),
        (None, None) => (3, Vec::new()),
    }
}
