//! How failures inside the adapter become [`RepositoryError`]s.
//!
//! Repository code works with [`Failure`], which keeps raw diesel errors apart from errors
//! already decided (not found, conflicts, corrupt rows); [`crate::store::PostgresStore`] then
//! classifies the raw ones, with the connection at hand, as an outage or a bug.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use rosetta_domain::InvalidValue;
use rosetta_ports::EntityKind;
use rosetta_ports::outbound::{CipherError, RepositoryError};

/// A failed repository step: either a diesel error still to be classified, or a decided error.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A query failed; whether the store is unavailable is decided later.
    Database(DieselError),
    /// The outcome is known (`NotFound`, `Conflict`, a corrupt row, …).
    Repository(RepositoryError),
}

impl From<DieselError> for Failure {
    fn from(err: DieselError) -> Self {
        Self::Database(err)
    }
}

impl From<RepositoryError> for Failure {
    fn from(err: RepositoryError) -> Self {
        Self::Repository(err)
    }
}

/// A stored value that breaks a domain invariant: the row was written around the API, or the
/// schema and the domain disagree. Names the place, never the value (it could be anything).
#[derive(Debug, thiserror::Error)]
#[error("corrupt row in {table} (id {id}): {column} {problem}")]
pub(crate) struct CorruptRow {
    table: &'static str,
    id: i64,
    column: &'static str,
    problem: String,
}

/// The row being turned into a domain value, to say where a [`CorruptRow`] is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredRow {
    table: &'static str,
    id: i64,
}

impl StoredRow {
    /// Row `id` of `table`.
    pub(crate) fn new(table: &'static str, id: i64) -> Self {
        Self { table, id }
    }

    /// The parsed value of `column`, or a [`CorruptRow`] naming it.
    pub(crate) fn field<T>(self, column: &'static str, parsed: Result<T, InvalidValue>) -> Result<T, CorruptRow> {
        parsed.map_err(|invalid| CorruptRow { table: self.table, id: self.id, column, problem: invalid.message })
    }

    /// A [`CorruptRow`] for a row that should exist alongside this one but does not (a
    /// pipeline without its metadata).
    pub(crate) fn missing(self, column: &'static str) -> CorruptRow {
        CorruptRow { table: self.table, id: self.id, column, problem: "has no matching row".to_owned() }
    }

    /// A [`CorruptRow`] for a stored value that cannot be read at all (JSON of the wrong shape,
    /// a negative byte count, a column missing from a half-written sample).
    pub(crate) fn invalid(self, column: &'static str, problem: impl Into<String>) -> CorruptRow {
        CorruptRow { table: self.table, id: self.id, column, problem: problem.into() }
    }
}

impl From<CorruptRow> for RepositoryError {
    fn from(err: CorruptRow) -> Self {
        RepositoryError::Unexpected(Box::new(err))
    }
}

impl From<CorruptRow> for Failure {
    fn from(err: CorruptRow) -> Self {
        Self::Repository(err.into())
    }
}

impl From<CipherError> for Failure {
    fn from(err: CipherError) -> Self {
        Self::Repository(RepositoryError::Unexpected(Box::new(err)))
    }
}

/// The constraint a unique or foreign-key violation names, if `err` is one.
pub(crate) fn violated_constraint(err: &DieselError) -> Option<&str> {
    match err {
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation,
            info,
        ) => info.constraint_name(),
        _ => None,
    }
}

/// `err` as a `Conflict` on `name` when it violates the unique constraint `name_key`.
pub(crate) fn name_conflict(err: DieselError, name_key: &str, entity: EntityKind, name: &str) -> Failure {
    if violated_constraint(&err) == Some(name_key) {
        RepositoryError::Conflict { entity, field: "name", value: name.to_owned() }.into()
    } else {
        err.into()
    }
}

/// `NotFound` for an entity.
pub(crate) fn not_found(entity: EntityKind, id: i64) -> Failure {
    RepositoryError::NotFound { entity, id }.into()
}

/// Whether a diesel error says the connection itself is gone (not just the statement).
pub(crate) fn is_connection_loss(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
    )
}

/// Whether a diesel error came from the server or the connection (and so may be an outage in
/// disguise, e.g. `57P01 admin_shutdown`, which diesel reports without its SQLSTATE), as opposed
/// to an error made on this side (a type mismatch while reading a row, a bad query).
pub(crate) fn may_be_outage(err: &DieselError) -> bool {
    matches!(err, DieselError::DatabaseError(..) | DieselError::BrokenTransactionManager)
}
