//! Lists: how a page request becomes OFFSET/LIMIT and a count becomes a total.
//!
//! Each list runs its count and its page in one read-only REPEATABLE READ transaction, so the
//! total always describes the same snapshot as the items.

use rosetta_domain::PageRequest;

/// OFFSET and LIMIT for `page`. A skip beyond `i64::MAX` is clamped: the page is empty anyway.
pub(crate) fn offset_limit(page: PageRequest) -> (i64, i64) {
    (i64::try_from(page.skip).unwrap_or(i64::MAX), i64::from(page.limit.get()))
}

/// A `count(*)` as a total (a count is never negative).
pub(crate) fn total_count(count: i64) -> u64 {
    count.unsigned_abs()
}
