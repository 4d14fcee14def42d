//! `EXPLAIN` of the adapter's own statements, for the tests that check their plans use the
//! indexes meant for them (on tables large enough that the planner would rather not).

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// `EXPLAIN <query>`, with the query's own bind parameters.
struct Explain<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Explain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("EXPLAIN ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for Explain<Q> {
    type SqlType = Text;
}

/// The plan of `query`, one line per plan node.
pub(crate) async fn plan<Q: QueryFragment<Pg> + Send>(conn: &mut AsyncPgConnection, query: Q) -> String {
    #[allow(clippy::unwrap_used)] // a test helper: a failed EXPLAIN fails the test
    Explain(query).load::<String>(conn).await.unwrap().join("\n")
}
