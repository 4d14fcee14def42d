//! Preflight: whether a source can feed CDC, as a list of checks an operator can act on. The
//! adapter gathers [`SourceFacts`]; [`Preflight::assess`] turns them into checks, so every
//! message and fix is written (and tested) here.

use crate::catalog::SourceTable;
use crate::{PgUsername, PublicationName};

/// The oldest PostgreSQL major version Rosetta supports as a source (`server_version_num`).
pub const MIN_SOURCE_VERSION_NUM: i32 = 130_000;

/// A check, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckName {
    /// Connected and authenticated.
    Connect,
    /// PostgreSQL 13 or later.
    ServerVersion,
    /// `wal_level = logical`.
    WalLevel,
    /// The role may replicate.
    ReplicationRole,
    /// A replication slot is free.
    SlotCapacity,
    /// A WAL sender is free.
    WalSenderCapacity,
    /// `max_slot_wal_keep_size` bounds what a slot can retain.
    MaxSlotWalKeepSize,
    /// The publication exists and publishes something.
    Publication,
    /// Published tables identify their rows.
    ReplicaIdentity,
    /// The role may read WAL on disk.
    MonitoringPrivilege,
    /// The connection is encrypted.
    Tls,
}

impl CheckName {
    /// Every check, in the order a preflight reports them.
    pub const ALL: [CheckName; 11] = [
        Self::Connect,
        Self::ServerVersion,
        Self::WalLevel,
        Self::ReplicationRole,
        Self::SlotCapacity,
        Self::WalSenderCapacity,
        Self::MaxSlotWalKeepSize,
        Self::Publication,
        Self::ReplicaIdentity,
        Self::MonitoringPrivilege,
        Self::Tls,
    ];

    /// The wire name (`connect`, `server_version`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ServerVersion => "server_version",
            Self::WalLevel => "wal_level",
            Self::ReplicationRole => "replication_role",
            Self::SlotCapacity => "slot_capacity",
            Self::WalSenderCapacity => "wal_sender_capacity",
            Self::MaxSlotWalKeepSize => "max_slot_wal_keep_size",
            Self::Publication => "publication",
            Self::ReplicaIdentity => "replica_identity",
            Self::MonitoringPrivilege => "monitoring_privilege",
            Self::Tls => "tls",
        }
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// Fine.
    Pass,
    /// Works, with a risk or a loss the operator should know about.
    Warn,
    /// CDC cannot work until this is fixed.
    Fail,
    /// Not checked (the connection failed).
    Skip,
}

impl CheckStatus {
    /// The wire name (`pass`, `warn`, `fail`, `skip`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Skip => "skip",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightCheck {
    /// Which check.
    pub name: CheckName,
    /// Its verdict.
    pub status: CheckStatus,
    /// What was found, for an operator (never a secret).
    pub message: String,
    /// What to run or change; `None` on pass and skip.
    pub fix: Option<String>,
}

/// Every check of one preflight, in [`CheckName::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The checks.
    pub checks: Vec<PreflightCheck>,
}

/// The publication as preflight sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationFacts {
    /// `FOR ALL TABLES`.
    pub all_tables: bool,
    /// The tables it publishes now.
    pub tables: Vec<SourceTable>,
}

/// What the source said, read over a connection as the source's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFacts {
    /// `server_version_num`.
    pub server_version_num: i32,
    /// `server_version`, for messages.
    pub server_version: String,
    /// `wal_level`.
    pub wal_level: String,
    /// The role is a superuser.
    pub is_superuser: bool,
    /// The role has `REPLICATION` (or, on RDS, `rds_replication`).
    pub may_replicate: bool,
    /// `max_replication_slots` and the slots that exist.
    pub max_replication_slots: i64,
    /// Slots in use.
    pub replication_slots_used: i64,
    /// `max_wal_senders` and the WAL senders running.
    pub max_wal_senders: i64,
    /// WAL senders in use.
    pub wal_senders_used: i64,
    /// `max_slot_wal_keep_size` in MB (`-1`: unlimited).
    pub max_slot_wal_keep_size_mb: i64,
    /// The publication, if it exists.
    pub publication: Option<PublicationFacts>,
    /// The role is a member of `pg_monitor` (or superuser).
    pub may_monitor: bool,
    /// The session is encrypted, and how (`TLSv1.3 …`).
    pub tls: Option<String>,
}

/// Who and what a preflight was about, for messages and fixes.
#[derive(Debug, Clone, Copy)]
pub struct PreflightSubject<'a> {
    /// The login role.
    pub username: &'a PgUsername,
    /// The publication the source names.
    pub publication: &'a PublicationName,
}

impl Preflight {
    /// The checks for what a connection found: with `Err` (why, as the `connect` check's
    /// message), a failed `connect` and every other check skipped.
    pub fn assess(facts: Result<&SourceFacts, &str>, subject: PreflightSubject<'_>) -> Self {
        let facts = match facts {
            Ok(facts) => facts,
            Err(reason) => return Self::unreachable(reason),
        };
        let role = quote_identifier(subject.username.as_str());
        let publication = subject.publication.as_str();
        let mut checks = vec![pass(CheckName::Connect, "connected and authenticated".to_owned())];

        checks.push(if facts.server_version_num >= MIN_SOURCE_VERSION_NUM {
            pass(CheckName::ServerVersion, format!("PostgreSQL {}", facts.server_version))
        } else {
            fail(
                CheckName::ServerVersion,
                format!("PostgreSQL {} is older than 13, the oldest supported source", facts.server_version),
                "Upgrade the server to PostgreSQL 13 or later.",
            )
        });

        checks.push(if facts.wal_level == "logical" {
            pass(CheckName::WalLevel, "wal_level is logical".to_owned())
        } else {
            fail(
                CheckName::WalLevel,
                format!("wal_level is '{}'; logical decoding needs 'logical'", facts.wal_level),
                "Run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL (on RDS/Aurora set \
                 rds.logical_replication = 1 in the parameter group; on Cloud SQL set the flag \
                 cloudsql.logical_decoding = on).",
            )
        });

        checks.push(if facts.is_superuser {
            pass(CheckName::ReplicationRole, "the role is a superuser".to_owned())
        } else if facts.may_replicate {
            pass(CheckName::ReplicationRole, "the role has REPLICATION".to_owned())
        } else {
            fail(
                CheckName::ReplicationRole,
                format!("role {role} may not replicate: it has neither REPLICATION nor superuser"),
                &format!("Run ALTER ROLE {role} WITH REPLICATION; (on RDS: GRANT rds_replication TO {role};)."),
            )
        });

        checks.push(capacity(
            CheckName::SlotCapacity,
            "replication slots",
            facts.replication_slots_used,
            facts.max_replication_slots,
            "Drop a replication slot nobody uses (SELECT pg_drop_replication_slot('name');), or raise \
             max_replication_slots and restart PostgreSQL.",
        ));
        checks.push(capacity(
            CheckName::WalSenderCapacity,
            "WAL senders",
            facts.wal_senders_used,
            facts.max_wal_senders,
            "Raise max_wal_senders and restart PostgreSQL, or stop a replication client that is no longer needed.",
        ));

        checks.push(if facts.max_slot_wal_keep_size_mb >= 0 {
            pass(
                CheckName::MaxSlotWalKeepSize,
                format!("a slot retains at most {} MB of WAL", facts.max_slot_wal_keep_size_mb),
            )
        } else {
            warn(
                CheckName::MaxSlotWalKeepSize,
                "max_slot_wal_keep_size is -1: an abandoned slot can retain WAL until the disk is full".to_owned(),
                "Run ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; (a size the disk can spare) and \
                 SELECT pg_reload_conf();",
            )
        });

        let published = facts.publication.as_ref();
        checks.push(match published {
            None => warn(
                CheckName::Publication,
                format!("publication {publication} does not exist"),
                &format!(
                    "Create it with PUT /api/v1/sources/{{id}}/publication, or run CREATE PUBLICATION {publication} \
                     FOR TABLE schema.table, …;"
                ),
            ),
            Some(p) if p.all_tables => {
                pass(CheckName::Publication, format!("publication {publication} publishes all tables"))
            }
            Some(p) if p.tables.is_empty() => warn(
                CheckName::Publication,
                format!("publication {publication} publishes no table"),
                &format!(
                    "Add tables with PUT /api/v1/sources/{{id}}/publication, or run ALTER PUBLICATION {publication} \
                     ADD TABLE schema.table;"
                ),
            ),
            Some(p) => {
                pass(CheckName::Publication, format!("publication {publication} publishes {} table(s)", p.tables.len()))
            }
        });

        checks.push(match published {
            None => skip(CheckName::ReplicaIdentity, format!("not checked: publication {publication} does not exist")),
            Some(p) => {
                let unidentified: Vec<String> =
                    p.tables.iter().filter(|t| !t.identifies_rows()).map(|t| t.table.to_string()).collect();
                if unidentified.is_empty() {
                    pass(
                        CheckName::ReplicaIdentity,
                        "every published table has a primary key or a replica identity".to_owned(),
                    )
                } else {
                    let first = p.tables.iter().find(|t| !t.identifies_rows()).map(|t| {
                        format!("{}.{}", quote_identifier(t.table.schema()), quote_identifier(t.table.name()))
                    });
                    warn(
                        CheckName::ReplicaIdentity,
                        format!(
                            "{} published table(s) have no primary key or replica identity; their updates and \
                             deletes cannot be replicated: {}",
                            unidentified.len(),
                            unidentified.join(", ")
                        ),
                        &format!(
                            "Add a primary key to each, or run ALTER TABLE {} REPLICA IDENTITY FULL; (and so on).",
                            first.unwrap_or_default()
                        ),
                    )
                }
            }
        });

        checks.push(if facts.is_superuser || facts.may_monitor {
            pass(CheckName::MonitoringPrivilege, "the role may read WAL on disk (pg_monitor)".to_owned())
        } else {
            warn(
                CheckName::MonitoringPrivilege,
                format!("role {role} is not a member of pg_monitor: wal_dir_bytes will be null"),
                &format!("Run GRANT pg_monitor TO {role};"),
            )
        });

        checks.push(match &facts.tls {
            Some(how) => pass(CheckName::Tls, format!("the connection is encrypted ({how})")),
            None => warn(
                CheckName::Tls,
                "the connection is not encrypted: the password and the data travel in plain text".to_owned(),
                "Turn on ssl on the server and connect over TLS.",
            ),
        });
        Self { checks }
    }

    /// A failed `connect`, every other check skipped.
    fn unreachable(reason: &str) -> Self {
        let mut checks = vec![PreflightCheck {
            name: CheckName::Connect,
            status: CheckStatus::Fail,
            message: reason.to_owned(),
            fix: Some(
                "Check pg_host, pg_port, pg_database, pg_username and pg_password, that the server accepts \
                 connections from Rosetta (listen_addresses, pg_hba.conf, firewalls), and that it is running."
                    .to_owned(),
            ),
        }];
        checks.extend(CheckName::ALL[1..].iter().map(|&name| skip(name, "not checked: cannot connect".to_owned())));
        Self { checks }
    }

    /// Whether no check failed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|check| check.status != CheckStatus::Fail)
    }
}

fn pass(name: CheckName, message: String) -> PreflightCheck {
    PreflightCheck { name, status: CheckStatus::Pass, message, fix: None }
}

fn warn(name: CheckName, message: String, fix: &str) -> PreflightCheck {
    PreflightCheck { name, status: CheckStatus::Warn, message, fix: Some(fix.to_owned()) }
}

fn fail(name: CheckName, message: String, fix: &str) -> PreflightCheck {
    PreflightCheck { name, status: CheckStatus::Fail, message, fix: Some(fix.to_owned()) }
}

fn skip(name: CheckName, message: String) -> PreflightCheck {
    PreflightCheck { name, status: CheckStatus::Skip, message, fix: None }
}

fn capacity(name: CheckName, what: &str, used: i64, max: i64, fix: &str) -> PreflightCheck {
    if used < max {
        pass(name, format!("{} of {max} {what} free", max - used))
    } else {
        fail(name, format!("all {max} {what} are in use ({used})"), fix)
    }
}

/// `value` as a PostgreSQL quoted identifier (`"a""b"`), for SQL shown to operators.
pub fn quote_identifier(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ReplicaIdentity, TableName};

    fn facts() -> SourceFacts {
        SourceFacts {
            server_version_num: 150_004,
            server_version: "15.4".to_owned(),
            wal_level: "logical".to_owned(),
            is_superuser: false,
            may_replicate: true,
            max_replication_slots: 10,
            replication_slots_used: 2,
            max_wal_senders: 10,
            wal_senders_used: 1,
            max_slot_wal_keep_size_mb: 1024,
            publication: Some(PublicationFacts { all_tables: false, tables: vec![table("orders", true)] }),
            may_monitor: true,
            tls: Some("TLSv1.3".to_owned()),
        }
    }

    fn table(name: &str, has_primary_key: bool) -> SourceTable {
        SourceTable {
            table: TableName::new("public", name).unwrap(),
            has_primary_key,
            replica_identity: ReplicaIdentity::Default,
            in_publication: true,
            estimated_rows: None,
        }
    }

    fn assess(facts: &SourceFacts) -> Preflight {
        let username = PgUsername::parse("cdc\"user").unwrap();
        let publication = PublicationName::parse("rosetta_pub").unwrap();
        Preflight::assess(Ok(facts), PreflightSubject { username: &username, publication: &publication })
    }

    fn status(preflight: &Preflight, name: CheckName) -> &PreflightCheck {
        preflight.checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_ready_source_passes_every_check_in_order() {
        let preflight = assess(&facts());
        assert!(preflight.ok());
        let names: Vec<CheckName> = preflight.checks.iter().map(|c| c.name).collect();
        assert_eq!(names, CheckName::ALL);
        assert!(preflight.checks.iter().all(|c| c.status == CheckStatus::Pass && c.fix.is_none()));
    }

    #[test]
    fn failures_carry_a_fix_and_quote_the_role() {
        let mut facts = facts();
        facts.wal_level = "replica".to_owned();
        facts.may_replicate = false;
        facts.replication_slots_used = 10;
        facts.server_version_num = 120_000;
        let preflight = assess(&facts);
        assert!(!preflight.ok());
        for name in [CheckName::WalLevel, CheckName::ReplicationRole, CheckName::SlotCapacity, CheckName::ServerVersion]
        {
            let check = status(&preflight, name);
            assert_eq!(check.status, CheckStatus::Fail, "{name:?}");
            assert!(check.fix.is_some());
        }
        assert!(status(&preflight, CheckName::ReplicationRole).fix.as_deref().unwrap().contains("\"cdc\"\"user\""));
        assert!(status(&preflight, CheckName::WalLevel).message.contains("'replica'"));
    }

    #[test]
    fn risks_are_warnings() {
        let mut facts = facts();
        facts.max_slot_wal_keep_size_mb = -1;
        facts.may_monitor = false;
        facts.tls = None;
        facts.publication =
            Some(PublicationFacts { all_tables: false, tables: vec![table("a", true), table("b", false)] });
        let preflight = assess(&facts);
        assert!(preflight.ok(), "warnings do not fail a preflight");
        for name in
            [CheckName::MaxSlotWalKeepSize, CheckName::MonitoringPrivilege, CheckName::Tls, CheckName::ReplicaIdentity]
        {
            assert_eq!(status(&preflight, name).status, CheckStatus::Warn, "{name:?}");
        }
        let identity = status(&preflight, CheckName::ReplicaIdentity);
        assert!(identity.message.contains("public.b") && !identity.message.contains("public.a"));
    }

    #[test]
    fn a_missing_or_empty_publication_warns() {
        let mut facts = facts();
        facts.publication = None;
        let preflight = assess(&facts);
        assert_eq!(status(&preflight, CheckName::Publication).status, CheckStatus::Warn);
        assert_eq!(status(&preflight, CheckName::ReplicaIdentity).status, CheckStatus::Skip);
        facts.publication = Some(PublicationFacts { all_tables: false, tables: Vec::new() });
        assert_eq!(status(&assess(&facts), CheckName::Publication).status, CheckStatus::Warn);
        facts.publication = Some(PublicationFacts { all_tables: true, tables: Vec::new() });
        assert_eq!(status(&assess(&facts), CheckName::Publication).status, CheckStatus::Pass);
    }

    #[test]
    fn an_unreachable_source_fails_connect_and_skips_the_rest() {
        let username = PgUsername::parse("u").unwrap();
        let publication = PublicationName::parse("p").unwrap();
        let preflight = Preflight::assess(
            Err("connection refused"),
            PreflightSubject { username: &username, publication: &publication },
        );
        assert!(!preflight.ok());
        assert_eq!(preflight.checks.len(), CheckName::ALL.len());
        assert_eq!(preflight.checks[0].status, CheckStatus::Fail);
        assert!(preflight.checks[0].message.contains("connection refused"));
        assert!(preflight.checks[1..].iter().all(|c| c.status == CheckStatus::Skip));
    }
}
