//! Finding an object by the identifier in its path, as upstream's
//! `get_resource` does: a UUID names it by uuid, anything else by name, and
//! a name that two of the caller's objects share is a 409.

use std::future::Future;

use magnum_core::MagnumError;

use crate::error::{ApiError, ApiResult};

/// How the answers about one kind of object read.
pub struct Kind {
    /// The 404 for an identifier nothing matches.
    pub not_found: fn(&str) -> ApiError,
    /// Its name in upstream's 409, plural and singular
    /// ("Multiple clusters exist …", "… use the cluster uuid instead.").
    pub plural: &'static str,
    pub singular: &'static str,
}

/// The one object of those `found` by the name `ident`.
pub fn one<T>(mut found: Vec<T>, ident: &str, kind: &Kind) -> ApiResult<T> {
    match found.len() {
        0 => Err((kind.not_found)(ident)),
        1 => Ok(found.remove(0)),
        _ => Err(MagnumError::Conflict(format!(
            "Multiple {} exist with same name. Please use the {} uuid instead.",
            kind.plural, kind.singular
        ))
        .into()),
    }
}

/// The object `ident` names: `by_uuid` when it is a UUID (given in its
/// canonical form), else the one of `by_name`'s.
pub async fn by_ident<T, E, U, N>(
    ident: &str,
    kind: &Kind,
    by_uuid: impl FnOnce(String) -> U,
    by_name: impl FnOnce() -> N,
) -> ApiResult<T>
where
    ApiError: From<E>,
    U: Future<Output = Result<Option<T>, E>>,
    N: Future<Output = Result<Vec<T>, E>>,
{
    match crate::fields::canonical_uuid(ident) {
        Some(uuid) => by_uuid(uuid).await?.ok_or_else(|| (kind.not_found)(ident)),
        None => one(by_name().await?, ident, kind),
    }
}
