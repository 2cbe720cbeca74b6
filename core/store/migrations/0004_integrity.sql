-- fleetcore 0004: integrity windows, scores, score history, alerts and
-- their delivery outbox, service checks.

-- Built-in measurements of one hour of a device's records (device time),
-- recomputed when signals of that hour arrive. See core/integrity.
CREATE TABLE integrity_windows (
    device_id      text NOT NULL,
    hour           timestamptz NOT NULL,
    records        bigint NOT NULL,
    missing        bigint NOT NULL,
    max_gap_ms     bigint NOT NULL,
    interval_ms    bigint NOT NULL,
    timely         bigint NOT NULL,
    late           bigint NOT NULL,
    early          bigint NOT NULL,
    lag_median_ms  bigint NOT NULL,
    lag_min_ms     bigint NOT NULL,
    lag_max_ms     bigint NOT NULL,
    gps_checked    bigint NOT NULL,
    gps_bad        bigint NOT NULL,
    gps_bad_since  timestamptz,
    gps_all_bad    boolean NOT NULL,
    dup            bigint NOT NULL,
    first_ts       timestamptz NOT NULL,
    last_ts        timestamptz NOT NULL,
    computed       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, hour)
);

-- The current score of every device; score is in hundredths of a point
-- (0..10000). dimensions and losses are the JSON of core/integrity.
CREATE TABLE device_scores (
    device_id       text PRIMARY KEY,
    score           int NOT NULL CHECK (score BETWEEN 0 AND 10000),
    dimensions      jsonb NOT NULL,
    losses          jsonb NOT NULL,
    windows         int NOT NULL,
    last_ts         timestamptz,
    last_recv       timestamptz,
    interval_ms     bigint NOT NULL,
    clock_offset_ms bigint NOT NULL,
    computed        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX device_scores_score_idx ON device_scores (score, device_id);

-- The score as of each window with data (the trend).
CREATE TABLE score_history (
    device_id text NOT NULL,
    hour      timestamptz NOT NULL,
    score     int NOT NULL,
    PRIMARY KEY (device_id, hour)
);

-- Alerts: at most one open alert per device and kind.
CREATE TABLE alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    text NOT NULL,
    kind         text NOT NULL,
    state        text NOT NULL CHECK (state IN ('open', 'cleared')),
    opened       timestamptz NOT NULL DEFAULT now(),
    cleared      timestamptz,
    since        timestamptz,       -- device time the condition started
    reason       text NOT NULL,
    clear_reason text
);

CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (device_id, kind) WHERE state = 'open';
CREATE INDEX alerts_device_idx ON alerts (device_id, opened DESC);

-- Outbox of alert state changes, delivered to the broker and webhook
-- after the transaction that made them commits.
CREATE TABLE alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id),
    device_id   text NOT NULL,
    kind        text NOT NULL,
    state       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL,
    published   timestamptz,        -- confirmed by the broker (or no broker)
    webhooked   timestamptz,        -- delivered to the webhook, or given up
    attempts    int NOT NULL DEFAULT 0,
    last_error  text
);

CREATE INDEX alert_events_pending_idx ON alert_events (id) WHERE published IS NULL OR webhooked IS NULL;

-- Watermarks of the score job (last signal id and finding id folded in).
CREATE TABLE integrity_state (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);
