-- Alerts and notifications (SPEC, "Alerts and notifications").
--
-- Rule settings are stored only where someone changed them: a rule without an alert_rules row
-- has the defaults of rosetta_domain::AlertRule::defaults, which live in one place, the code.
-- The settings columns mirror rosetta_domain::RuleSettings, which the adapter validates on read.

CREATE TABLE alert_rules (
    rule           TEXT PRIMARY KEY,
    enabled        BOOLEAN NOT NULL,
    warning        BIGINT NULL,
    critical       BIGINT NULL,
    for_seconds    BIGINT NULL,
    window_seconds BIGINT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT alert_rules_rule_check CHECK (rule ~ '^[a-z_]{1,63}$')
);

-- A source's own settings of a rule, whole (they replace the global ones for that source).
CREATE TABLE source_alert_rules (
    source_id      BIGINT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    rule           TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    warning        BIGINT NULL,
    critical       BIGINT NULL,
    for_seconds    BIGINT NULL,
    window_seconds BIGINT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT source_alert_rules_pkey PRIMARY KEY (source_id, rule),
    CONSTRAINT source_alert_rules_rule_check CHECK (rule ~ '^[a-z_]{1,63}$')
);

-- One row per firing of one rule for one subject. source_id is kept while the source exists;
-- deleting the source resolves its alerts first (trigger below), then clears the reference.
CREATE TABLE alerts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    state            TEXT NOT NULL,
    source_id        BIGINT NULL REFERENCES sources (id) ON DELETE SET NULL,
    source_name      TEXT NOT NULL,
    slot_name        TEXT NULL,
    summary          TEXT NOT NULL,
    value            BIGINT NULL,
    threshold        BIGINT NULL,
    -- Good samples in a row without the condition (the hysteresis of resolution).
    clear_streak     SMALLINT NOT NULL DEFAULT 0,
    started_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    resolved_at      TIMESTAMPTZ NULL,
    resolve_reason   TEXT NULL,
    acknowledged_at  TIMESTAMPTZ NULL,
    last_notified_at TIMESTAMPTZ NULL,
    CONSTRAINT alerts_severity_check CHECK (severity IN ('warning', 'critical')),
    CONSTRAINT alerts_state_check CHECK (state IN ('FIRING', 'RESOLVED')),
    CONSTRAINT alerts_resolved_check CHECK (
        (state = 'RESOLVED') = (resolved_at IS NOT NULL)
        AND (state = 'RESOLVED') = (resolve_reason IS NOT NULL)
    ),
    CONSTRAINT alerts_firing_source_check CHECK (state = 'RESOLVED' OR source_id IS NOT NULL),
    CONSTRAINT alerts_resolve_reason_check CHECK (
        resolve_reason IN ('cleared', 'rule_disabled', 'slot_back', 'acknowledged', 'source_deleted')
    ),
    CONSTRAINT alerts_clear_streak_check CHECK (clear_streak >= 0)
);

-- At most one firing alert per key, whatever processes race to write one.
CREATE UNIQUE INDEX alerts_one_firing_per_key ON alerts (source_id, rule, (coalesce(slot_name, '')))
    WHERE state = 'FIRING';
-- Lists: newest first, overall and per source.
CREATE INDEX alerts_started_at_idx ON alerts (started_at DESC, id DESC);
CREATE INDEX alerts_source_started_at_idx ON alerts (source_id, started_at DESC, id DESC);

-- What the last evaluation of a source remembered beside its alerts (rosetta_domain::AlertMemory):
-- the permanent slots of its last good sample, and since when conditions that need time hold.
CREATE TABLE alert_memory (
    source_id   BIGINT PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    -- ["slot", …]
    known_slots JSONB NOT NULL,
    -- [{rule, slot_name, since_us, confirmed_flush_lsn, current_lsn}] (times in Unix microseconds)
    watches     JSONB NOT NULL,
    CONSTRAINT alert_memory_json_check CHECK (
        jsonb_typeof(known_slots) = 'array' AND jsonb_typeof(watches) = 'array'
    )
);

-- Where alerts are sent. url and signing_secret are sealed (bound to the row, like source
-- passwords); url_host (scheme, host, port) is what responses show.
CREATE TABLE notification_channels (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  TEXT NOT NULL,
    kind                  TEXT NOT NULL,
    url_sealed            BYTEA NULL,
    url_host              TEXT NOT NULL,
    signing_secret_sealed BYTEA NULL,
    min_severity          TEXT NOT NULL,
    enabled               BOOLEAN NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    CONSTRAINT notification_channels_name_key UNIQUE (name),
    CONSTRAINT notification_channels_kind_check CHECK (kind IN ('webhook', 'slack', 'alertmanager')),
    CONSTRAINT notification_channels_min_severity_check CHECK (min_severity IN ('warning', 'critical')),
    CONSTRAINT notification_channels_secret_check CHECK (kind = 'webhook' OR signing_secret_sealed IS NULL)
);

-- One alert transition to one channel (an outbox row, written with the transition). Each is an
-- item of the 'notification_delivery' lease queue while pending, due at next_attempt_at.
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id      BIGINT NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    alert_id        BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'PENDING',
    attempts        INTEGER NOT NULL DEFAULT 0,
    status_code     INTEGER NULL,
    error           TEXT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ NULL,
    next_attempt_at TIMESTAMPTZ NULL,
    CONSTRAINT deliveries_type_check CHECK (
        type IN ('alert.firing', 'alert.escalated', 'alert.resolved', 'alert.renotify')
    ),
    CONSTRAINT deliveries_state_check CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    CONSTRAINT deliveries_delivered_check CHECK ((state = 'DELIVERED') = (delivered_at IS NOT NULL)),
    CONSTRAINT deliveries_next_attempt_check CHECK ((state = 'PENDING') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT deliveries_attempts_check CHECK (attempts >= 0)
);
CREATE INDEX deliveries_channel_idx ON deliveries (channel_id, id DESC);
CREATE INDEX deliveries_alert_idx ON deliveries (alert_id);

-- A pending delivery is queued from the moment it exists; it leaves the queue when it is
-- delivered or given up (the adapter completes its lease as Done) or deleted.
CREATE FUNCTION rosetta_delivery_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO leases (queue, item_id, due_at) VALUES ('notification_delivery', NEW.id, NEW.next_attempt_at);
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_created AFTER INSERT ON deliveries
    FOR EACH ROW EXECUTE FUNCTION rosetta_delivery_created();

CREATE FUNCTION rosetta_delivery_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM leases WHERE queue = 'notification_delivery' AND item_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_deleted AFTER DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION rosetta_delivery_deleted();

-- Deleting a source resolves its firing alerts, with a resolved delivery per matching channel,
-- in the deleting transaction (then the foreign key clears alerts.source_id).
CREATE FUNCTION rosetta_source_alerts_resolved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH resolved AS (
        UPDATE alerts
        SET state = 'RESOLVED', resolved_at = now(), resolve_reason = 'source_deleted', updated_at = now(),
            last_notified_at = now()
        WHERE source_id = OLD.id AND state = 'FIRING'
        RETURNING id, severity
    )
    INSERT INTO deliveries (channel_id, alert_id, type, created_at, next_attempt_at)
    SELECT c.id, r.id, 'alert.resolved', now(), now()
    FROM resolved r JOIN notification_channels c
      ON c.enabled AND (c.min_severity = 'warning' OR r.severity = 'critical');
    RETURN OLD;
END
$$;
CREATE TRIGGER sources_alerts_resolved BEFORE DELETE ON sources
    FOR EACH ROW EXECUTE FUNCTION rosetta_source_alerts_resolved();
