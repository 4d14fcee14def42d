DROP TABLE system_metrics;
DROP TABLE wal_metrics;
DROP TABLE wal_monitor;
