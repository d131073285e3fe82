//! Keyset pagination the way upstream pages (oslo.db's `paginate_query`):
//! rows sorted by the requested key then by `id`, starting after a marker
//! row. NULLs sort first in ascending order on every backend (PostgreSQL's
//! own default differs, so the order is spelled out).

use sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement, SimpleExpr, SubQueryStatement};

use crate::schema::Table;

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    #[default]
    Asc,
    Desc,
}

/// One page request.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: Option<u64>,
    /// The `id` of the last row of the previous page.
    pub marker_id: Option<i64>,
    /// A column name; `None` sorts by `id`.
    pub sort_key: Option<String>,
    pub sort_dir: SortDir,
}

/// Whether `key` names a column of `table` (upstream rejects other keys).
pub fn valid_sort_key(table: &Table, key: &str) -> bool {
    table.has_column(key)
}

fn null_rank(col: &str) -> SimpleExpr {
    Expr::case(Expr::col(Alias::new(col)).is_null(), 0)
        .finally(1)
        .into()
}

/// Order and restrict `query` (a select over `table`) to the page.
pub(crate) fn apply(query: &mut SelectStatement, table: &Table, page: &Page) {
    let order = match page.sort_dir {
        SortDir::Asc => Order::Asc,
        SortDir::Desc => Order::Desc,
    };
    let key = page.sort_key.as_deref().filter(|k| *k != "id");
    let id = || Expr::col(Alias::new("id"));
    if let Some(marker) = page.marker_id {
        let after_id = match page.sort_dir {
            SortDir::Asc => id().gt(marker),
            SortDir::Desc => id().lt(marker),
        };
        let cond = match key {
            None => Cond::all().add(after_id),
            Some(key) => {
                let marker_value = || {
                    SimpleExpr::SubQuery(
                        None,
                        Box::new(SubQueryStatement::SelectStatement(
                            Query::select()
                                .column(Alias::new(key))
                                .from(Alias::new(table.name))
                                .and_where(id().eq(marker))
                                .to_owned(),
                        )),
                    )
                };
                let col = || Expr::col(Alias::new(key));
                let tie = Cond::any().add(col().eq(marker_value())).add(
                    Cond::all()
                        .add(col().is_null())
                        .add(Expr::expr(marker_value()).is_null()),
                );
                let (beyond, null_side) = match page.sort_dir {
                    SortDir::Asc => (
                        col().gt(marker_value()),
                        Cond::all()
                            .add(Expr::expr(marker_value()).is_null())
                            .add(col().is_not_null()),
                    ),
                    SortDir::Desc => (
                        col().lt(marker_value()),
                        Cond::all()
                            .add(Expr::expr(marker_value()).is_not_null())
                            .add(col().is_null()),
                    ),
                };
                Cond::any()
                    .add(null_side)
                    .add(beyond)
                    .add(Cond::all().add(tie).add(after_id))
            }
        };
        query.cond_where(cond);
    }
    if let Some(key) = key {
        query.order_by_expr(null_rank(key), order.clone());
        query.order_by(Alias::new(key), order.clone());
    }
    query.order_by(Alias::new("id"), order);
    if let Some(limit) = page.limit {
        query.limit(limit);
    }
}
