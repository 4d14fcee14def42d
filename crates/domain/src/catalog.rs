//! What a source's catalog says about its tables and its publication.

use std::fmt;

use crate::PublicationName;
use crate::invalid::{InvalidKind, InvalidValue};

/// A table of a source, `schema.name` as written in the API. Both parts are PostgreSQL
/// identifiers taken literally (case kept, never folded; adapters quote them): `public.Orders`
/// is the table created as `"Orders"`. The schema is everything before the first `.`, so a
/// schema whose name contains a `.` cannot be named.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    schema: String,
    name: String,
}

impl TableName {
    /// A table from its two parts, each 1–63 bytes without control characters.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Result<Self, InvalidValue> {
        let (schema, name) = (schema.into(), name.into());
        check_identifier(&schema, "the schema")?;
        check_identifier(&name, "the table name")?;
        Ok(Self { schema, name })
    }

    /// Parses `schema.name`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let Some((schema, name)) = value.split_once('.') else {
            return Err(InvalidValue::new(InvalidKind::PatternMismatch, "must be schema.table, e.g. public.orders"));
        };
        Self::new(schema, name)
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table's name within its schema.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

fn check_identifier(value: &str, what: &str) -> Result<(), InvalidValue> {
    if value.is_empty() {
        Err(InvalidValue::new(InvalidKind::TooShort, format!("{what} must not be empty")))
    } else if value.len() > 63 {
        Err(InvalidValue::new(InvalidKind::TooLong, format!("{what} must be at most 63 bytes")))
    } else if value.chars().any(char::is_control) {
        Err(InvalidValue::new(InvalidKind::PatternMismatch, format!("{what} must not contain control characters")))
    } else {
        Ok(())
    }
}

/// How a table identifies the old row of an update or delete to logical replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// The primary key (nothing, for a table without one).
    Default,
    /// The whole row.
    Full,
    /// A chosen unique index.
    Index,
    /// Nothing: updates and deletes cannot be replicated.
    Nothing,
}

impl ReplicaIdentity {
    /// PostgreSQL's `relreplident` code (`d`, `f`, `i`, `n`).
    pub fn from_code(code: char) -> Option<Self> {
        match code {
            'd' => Some(Self::Default),
            'f' => Some(Self::Full),
            'i' => Some(Self::Index),
            'n' => Some(Self::Nothing),
            _ => None,
        }
    }

    /// The wire name (`default`, `full`, `index`, `nothing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Full => "full",
            Self::Index => "index",
            Self::Nothing => "nothing",
        }
    }
}

/// A user table of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// Its name.
    pub table: TableName,
    /// Whether it has a primary key.
    pub has_primary_key: bool,
    /// Its replica identity.
    pub replica_identity: ReplicaIdentity,
    /// Whether the source's publication publishes it.
    pub in_publication: bool,
    /// The planner's row estimate (`None` before the table was ever analysed).
    pub estimated_rows: Option<u64>,
}

impl SourceTable {
    /// Whether its updates and deletes can be replicated: it has a primary key under the
    /// default identity, or another identity that names the row.
    pub fn identifies_rows(&self) -> bool {
        match self.replica_identity {
            ReplicaIdentity::Default => self.has_primary_key,
            ReplicaIdentity::Full | ReplicaIdentity::Index => true,
            ReplicaIdentity::Nothing => false,
        }
    }
}

/// A source's publication as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Its name (the source's `publication_name`).
    pub name: PublicationName,
    /// Whether it exists.
    pub exists: bool,
    /// Whether it publishes every table (`FOR ALL TABLES`).
    pub all_tables: bool,
    /// The tables it publishes, sorted.
    pub tables: Vec<TableName>,
}

/// What a publication should publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationTables {
    /// Exactly these tables (at least one, no duplicates).
    Tables(Vec<TableName>),
    /// Every table, present and future.
    AllTables,
}

impl PublicationTables {
    /// Exactly `tables`, deduplicated and sorted; at least one.
    pub fn exactly(mut tables: Vec<TableName>) -> Result<Self, InvalidValue> {
        tables.sort();
        tables.dedup();
        if tables.is_empty() {
            return Err(InvalidValue::new(InvalidKind::TooShort, "must name at least one table"));
        }
        Ok(Self::Tables(tables))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_split_at_the_first_dot_and_keep_case() {
        let table = TableName::parse("public.Order.Items").unwrap();
        assert_eq!((table.schema(), table.name()), ("public", "Order.Items"));
        assert_eq!(table.to_string(), "public.Order.Items");
        assert_eq!(TableName::parse("orders").unwrap_err().kind, InvalidKind::PatternMismatch);
        assert_eq!(TableName::parse(".orders").unwrap_err().kind, InvalidKind::TooShort);
        assert_eq!(TableName::parse("public.").unwrap_err().kind, InvalidKind::TooShort);
        assert_eq!(TableName::new("public", "a".repeat(64)).unwrap_err().kind, InvalidKind::TooLong);
        assert_eq!(TableName::parse("public.a\u{0}b").unwrap_err().kind, InvalidKind::PatternMismatch);
    }

    #[test]
    fn a_publication_set_is_sorted_without_duplicates_and_not_empty() {
        let b = TableName::parse("public.b").unwrap();
        let a = TableName::parse("public.a").unwrap();
        assert_eq!(
            PublicationTables::exactly(vec![b.clone(), a.clone(), b.clone()]).unwrap(),
            PublicationTables::Tables(vec![a, b])
        );
        assert!(PublicationTables::exactly(Vec::new()).is_err());
    }

    #[test]
    fn rows_are_identified_by_a_key_or_an_identity() {
        let table = |has_primary_key, replica_identity| SourceTable {
            table: TableName::parse("public.t").unwrap(),
            has_primary_key,
            replica_identity,
            in_publication: false,
            estimated_rows: None,
        };
        assert!(table(true, ReplicaIdentity::Default).identifies_rows());
        assert!(!table(false, ReplicaIdentity::Default).identifies_rows());
        assert!(table(false, ReplicaIdentity::Full).identifies_rows());
        assert!(!table(true, ReplicaIdentity::Nothing).identifies_rows());
        assert_eq!(ReplicaIdentity::from_code('i'), Some(ReplicaIdentity::Index));
        assert_eq!(ReplicaIdentity::from_code('x'), None);
    }
}
