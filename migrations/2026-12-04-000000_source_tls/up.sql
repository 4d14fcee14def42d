-- TLS to sources: libpq's sslmode (default prefer, which falls back to plain text only when a
-- server refuses TLS, so existing sources connect as before) and the roots trusted to verify
-- the server (PEM; null: the system's roots). A cleanup task keeps its own copy, as it does of
-- the other connection settings, so it can still drop a slot after its source is deleted.
ALTER TABLE sources
    ADD COLUMN pg_sslmode text NOT NULL DEFAULT 'prefer'
        CONSTRAINT sources_pg_sslmode_check
        CHECK (pg_sslmode IN ('disable', 'prefer', 'require', 'verify-ca', 'verify-full')),
    ADD COLUMN pg_sslrootcert text;

ALTER TABLE cleanup_tasks
    ADD COLUMN pg_sslmode text NOT NULL DEFAULT 'prefer'
        CONSTRAINT cleanup_tasks_pg_sslmode_check
        CHECK (pg_sslmode IN ('disable', 'prefer', 'require', 'verify-ca', 'verify-full')),
    ADD COLUMN pg_sslrootcert text;
