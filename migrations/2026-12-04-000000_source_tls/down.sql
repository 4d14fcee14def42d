ALTER TABLE cleanup_tasks DROP COLUMN pg_sslrootcert, DROP COLUMN pg_sslmode;
ALTER TABLE sources DROP COLUMN pg_sslrootcert, DROP COLUMN pg_sslmode;
