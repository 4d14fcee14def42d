//! The tables of `migrations/`, written by hand (diesel_cli would need libpq), and the names of
//! the constraints whose violations the repositories translate into port errors.

diesel::table! {
    /// PostgreSQL databases to replicate from.
    sources (id) {
        id -> Int8,
        name -> Text,
        pg_host -> Text,
        pg_port -> Int4,
        pg_database -> Text,
        pg_username -> Text,
        pg_password_sealed -> Nullable<Bytea>,
        publication_name -> Text,
        replication_id -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        pg_sslmode -> Text,
        pg_sslrootcert -> Nullable<Text>,
    }
}

diesel::table! {
    /// Snowflake warehouses to replicate into.
    destinations (id) {
        id -> Int8,
        name -> Text,
        snowflake_account -> Nullable<Text>,
        snowflake_user -> Nullable<Text>,
        snowflake_database -> Nullable<Text>,
        snowflake_schema -> Nullable<Text>,
        snowflake_role -> Nullable<Text>,
        snowflake_private_key_path -> Nullable<Text>,
        snowflake_host -> Nullable<Text>,
        snowflake_private_key_passphrase_sealed -> Nullable<Bytea>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// Source → destination pipelines with their desired status.
    pipelines (id) {
        id -> Int8,
        name -> Text,
        source_id -> Int8,
        destination_id -> Int8,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        slot_name -> Text,
        slot_managed -> Bool,
    }
}

diesel::table! {
    /// Work on a source that outlives what asked for it (a managed slot to drop).
    cleanup_tasks (id) {
        id -> Int8,
        kind -> Text,
        source_id -> Int8,
        slot_name -> Text,
        pg_host -> Text,
        pg_port -> Int4,
        pg_database -> Text,
        pg_username -> Text,
        pg_password_sealed -> Nullable<Bytea>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        pg_sslmode -> Text,
        pg_sslrootcert -> Nullable<Text>,
    }
}

diesel::table! {
    /// The observed state of each pipeline (one row per pipeline).
    pipeline_metadata (pipeline_id) {
        pipeline_id -> Int8,
        status -> Text,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamptz>,
        last_start_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// The WAL monitor's latest state per source.
    wal_monitor (source_id) {
        source_id -> Int8,
        status -> Nullable<Text>,
        sampled_at -> Nullable<Timestamptz>,
        in_recovery -> Nullable<Bool>,
        current_lsn -> Nullable<Int8>,
        wal_dir_bytes -> Nullable<Int8>,
        size_bytes -> Nullable<Int8>,
        slots -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        last_attempt_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// WAL history: one row per source per attempt.
    wal_metrics (id) {
        id -> Int8,
        source_id -> Int8,
        recorded_at -> Timestamptz,
        status -> Text,
        sampled_at -> Nullable<Timestamptz>,
        in_recovery -> Nullable<Bool>,
        current_lsn -> Nullable<Int8>,
        wal_dir_bytes -> Nullable<Int8>,
        size_bytes -> Nullable<Int8>,
        slots -> Nullable<Jsonb>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    /// Host CPU / memory / swap samples.
    system_metrics (id) {
        id -> Int8,
        sampled_at -> Timestamptz,
        cpu_percent -> Float8,
        memory_used_bytes -> Int8,
        memory_total_bytes -> Int8,
        swap_used_bytes -> Int8,
        swap_total_bytes -> Int8,
    }
}

diesel::table! {
    /// Alerts: one row per firing of a rule for a subject.
    alerts (id) {
        id -> Int8,
        rule -> Text,
        severity -> Text,
        state -> Text,
        source_id -> Nullable<Int8>,
        source_name -> Text,
        slot_name -> Nullable<Text>,
        summary -> Text,
        value -> Nullable<Int8>,
        threshold -> Nullable<Int8>,
        clear_streak -> Int2,
        started_at -> Timestamptz,
        updated_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        resolve_reason -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamptz>,
        last_notified_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// Where alerts are sent; URL and signing secret sealed.
    notification_channels (id) {
        id -> Int8,
        name -> Text,
        kind -> Text,
        url_sealed -> Nullable<Bytea>,
        url_host -> Text,
        signing_secret_sealed -> Nullable<Bytea>,
        min_severity -> Text,
        enabled -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// One alert transition to one channel (the outbox).
    deliveries (id) {
        id -> Int8,
        channel_id -> Int8,
        alert_id -> Int8,
        #[sql_name = "type"]
        notification_type -> Text,
        state -> Text,
        attempts -> Int4,
        status_code -> Nullable<Int4>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(deliveries -> notification_channels (channel_id));
diesel::joinable!(deliveries -> alerts (alert_id));
diesel::joinable!(pipelines -> sources (source_id));
diesel::joinable!(pipelines -> destinations (destination_id));
diesel::joinable!(pipeline_metadata -> pipelines (pipeline_id));
diesel::joinable!(wal_monitor -> sources (source_id));
diesel::joinable!(wal_metrics -> sources (source_id));

diesel::allow_tables_to_appear_in_same_query!(
    sources,
    destinations,
    pipelines,
    pipeline_metadata,
    wal_monitor,
    wal_metrics,
    system_metrics,
    alerts,
    notification_channels,
    deliveries,
    cleanup_tasks
);

/// Constraint names from the migrations, matched against the `constraint_name` of unique and
/// foreign-key violations (SQLSTATE messages are not a stable interface; names are ours).
pub(crate) mod constraints {
    /// `UNIQUE (name)` on `sources`.
    pub(crate) const SOURCES_NAME_KEY: &str = "sources_name_key";
    /// `UNIQUE (name)` on `destinations`.
    pub(crate) const DESTINATIONS_NAME_KEY: &str = "destinations_name_key";
    /// `UNIQUE (name)` on `notification_channels`.
    pub(crate) const NOTIFICATION_CHANNELS_NAME_KEY: &str = "notification_channels_name_key";
    /// `source_alert_rules.source_id REFERENCES sources (id)`.
    pub(crate) const SOURCE_ALERT_RULES_SOURCE_ID_FKEY: &str = "source_alert_rules_source_id_fkey";
    /// `UNIQUE (name)` on `pipelines`.
    pub(crate) const PIPELINES_NAME_KEY: &str = "pipelines_name_key";
    /// `UNIQUE (source_id, slot_name)` on `pipelines`.
    pub(crate) const PIPELINES_SOURCE_ID_SLOT_NAME_KEY: &str = "pipelines_source_id_slot_name_key";
    /// `pipelines.source_id REFERENCES sources (id)`.
    pub(crate) const PIPELINES_SOURCE_ID_FKEY: &str = "pipelines_source_id_fkey";
    /// `pipelines.destination_id REFERENCES destinations (id)`.
    pub(crate) const PIPELINES_DESTINATION_ID_FKEY: &str = "pipelines_destination_id_fkey";
}
