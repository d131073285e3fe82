//! Collection queries: `limit`, `marker`, `sort_key`, `sort_dir`, capped by
//! `[api] max_limit`, and the `next` link a page carries when there may be
//! more.

use magnum_db::{Page, SortDir};
use serde_json::Value;

use crate::error::ApiError;
use crate::fields::canonical_uuid;
use crate::links::BaseUrl;

/// The paging arguments of a collection request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub marker: Option<String>,
    pub sort_key: String,
    pub sort_dir: String,
    /// Other arguments the resource accepts (filters), in request order.
    pub extra: Vec<(String, String)>,
}

/// What a resource's `marker` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Uuid,
    /// An integer row id (quotas).
    Id,
}

impl ListQuery {
    /// Parse a query string; `accepted` names the resource's own filters.
    /// Unknown arguments are refused, as upstream's framework does.
    pub fn parse(raw: Option<&str>, accepted: &[&str]) -> Result<ListQuery, ApiError> {
        Self::parse_with(raw, accepted, Marker::Uuid)
    }

    /// As [`ListQuery::parse`], for a resource whose marker is `marker`.
    pub fn parse_with(
        raw: Option<&str>,
        accepted: &[&str],
        marker: Marker,
    ) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery {
            limit: None,
            marker: None,
            sort_key: "id".into(),
            sort_dir: "asc".into(),
            extra: Vec::new(),
        };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "limit" => {
                    let n = value.trim().parse::<i64>().map_err(|_| {
                        ApiError::invalid_input(
                            "limit",
                            &Value::String(value.to_string()),
                            "unable to convert to int",
                        )
                    })?;
                    q.limit = Some(n);
                }
                "marker" if marker == Marker::Id => {
                    value.trim().parse::<i64>().map_err(|_| {
                        ApiError::invalid_input(
                            "marker",
                            &Value::String(value.to_string()),
                            "unable to convert to int",
                        )
                    })?;
                    q.marker = Some(value.trim().to_string());
                }
                "marker" => {
                    let uuid = canonical_uuid(&value).ok_or_else(|| {
                        ApiError::invalid_input(
                            "marker",
                            &Value::String(value.to_string()),
                            format!("unable to convert to uuid. Error: Expected a uuid but received {value}."),
                        )
                    })?;
                    q.marker = Some(uuid);
                }
                "sort_key" => q.sort_key = value.to_string(),
                "sort_dir" => q.sort_dir = value.to_string(),
                other if accepted.contains(&other) => {
                    q.extra.push((other.to_string(), value.to_string()))
                }
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "Unknown argument: \"{other}\""
                    )));
                }
            }
        }
        Ok(q)
    }

    /// The page size in force: the requested limit capped by `max_limit`.
    pub fn effective_limit(&self, max_limit: u64) -> Result<u64, ApiError> {
        match self.limit {
            Some(n) if n <= 0 => Err(ApiError::BadRequest("Limit must be positive".into())),
            Some(n) => Ok((n as u64).min(max_limit)),
            None => Ok(max_limit),
        }
    }

    pub fn dir(&self) -> Result<SortDir, ApiError> {
        match self.sort_dir.as_str() {
            "asc" => Ok(SortDir::Asc),
            "desc" => Ok(SortDir::Desc),
            other => Err(ApiError::BadRequest(format!(
                "Invalid sort direction: {other}. Acceptable values are 'asc' or 'desc'"
            ))),
        }
    }

    /// The database page, once the marker's row id is known; refuses sort
    /// keys that are not columns.
    pub fn page(
        &self,
        max_limit: u64,
        marker_id: Option<i64>,
        valid_key: impl Fn(&str) -> bool,
    ) -> Result<Page, ApiError> {
        let limit = self.effective_limit(max_limit)?;
        let sort_dir = self.dir()?;
        if !valid_key(&self.sort_key) {
            return Err(ApiError::BadRequest(format!(
                "The sort_key value \"{}\" is an invalid field for sorting",
                self.sort_key
            )));
        }
        Ok(Page {
            limit: Some(limit),
            marker_id,
            sort_key: Some(self.sort_key.clone()),
            sort_dir,
        })
    }

    /// The page this query asks for, and its limit: the limit and sort
    /// direction checked, the marker (if any) resolved to its row's id by
    /// `marker_id` (which answers the marker's 404), then the sort key
    /// checked by `valid_key`. Upstream checks in this order.
    pub async fn resolve<F, Fut>(
        &self,
        max_limit: u64,
        valid_key: impl Fn(&str) -> bool,
        marker_id: F,
    ) -> Result<(Page, u64), ApiError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<i64, ApiError>>,
    {
        let limit = self.effective_limit(max_limit)?;
        self.dir()?;
        let marker_id = match &self.marker {
            Some(m) => Some(marker_id(m.clone()).await?),
            None => None,
        };
        Ok((self.page(max_limit, marker_id, valid_key)?, limit))
    }

    /// The `next` link when the page is full.
    pub fn next_link(
        &self,
        base: &BaseUrl,
        resource_url: &str,
        returned: usize,
        limit: u64,
        last_marker: Option<&str>,
    ) -> Option<String> {
        if returned == 0 || returned as u64 != limit {
            return None;
        }
        let marker = last_marker?;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let args = format!(
            "?sort_key={}&sort_dir={}&limit={limit}&marker={}",
            enc(&self.sort_key),
            enc(&self.sort_dir),
            enc(marker)
        );
        Some(base.url(resource_url, &args, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let q = ListQuery::parse(Some("limit=2&sort_key=name&sort_dir=desc"), &[]).unwrap();
        assert_eq!(q.limit, Some(2));
        assert_eq!(q.effective_limit(1000).unwrap(), 2);
        assert_eq!(q.dir().unwrap(), SortDir::Desc);
        assert!(ListQuery::parse(Some("limit=abc"), &[]).is_err());
        assert!(ListQuery::parse(Some("marker=nope"), &[]).is_err());
        assert!(ListQuery::parse(Some("bogus=1"), &[]).is_err());
        let q = ListQuery::parse(Some("limit=0"), &[]).unwrap();
        assert!(q.effective_limit(10).is_err());
        let q = ListQuery::parse(Some("limit=5000"), &[]).unwrap();
        assert_eq!(q.effective_limit(1000).unwrap(), 1000);
        let q = ListQuery::parse(Some("sort_dir=up"), &[]).unwrap();
        assert!(q.dir().is_err());
    }

    #[test]
    fn next_link_only_when_full() {
        let q = ListQuery::parse(Some("limit=1"), &[]).unwrap();
        let base = BaseUrl("http://h:9511".into());
        assert_eq!(
            q.next_link(&base, "clusters", 1, 1, Some("u")).unwrap(),
            "http://h:9511/v1/clusters?sort_key=id&sort_dir=asc&limit=1&marker=u"
        );
        assert!(q.next_link(&base, "clusters", 0, 1, None).is_none());
        assert!(q.next_link(&base, "clusters", 1, 2, Some("u")).is_none());
    }
}
