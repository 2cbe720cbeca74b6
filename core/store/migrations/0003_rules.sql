-- fleetcore 0003: quality rule findings, hourly rule statistics, per-rule
-- watermarks and the record of batches a rule did not evaluate.

-- One row per signal that a rule version judged warn or fail. The unique
-- key makes a repeated evaluation harmless, but the scheduler's watermark
-- lease already guarantees each signal is evaluated once per rule version.
CREATE TABLE findings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    signal_id    bigint NOT NULL,
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    rule         text NOT NULL,
    rule_version text NOT NULL,
    dimension    text NOT NULL,  -- validity|completeness|timeliness|uniqueness|consistency
    severity     text NOT NULL,  -- info|warning|critical
    status       text NOT NULL,  -- warn|fail
    reason       int NOT NULL,
    reason_text  text NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (signal_id, rule, rule_version)
);

CREATE INDEX findings_device_ts_idx ON findings (device_id, ts DESC);
CREATE INDEX findings_rule_created_idx ON findings (rule, rule_version, created DESC);

-- Per device, hour of device time, rule and version: how many signals were
-- evaluated and how they came out. evaluated = passed + warned + failed +
-- not_applicable; signals a rule could not evaluate are not counted (see
-- rule_errors). Integrity scores are folded from here.
CREATE TABLE rule_stats (
    device_id      text NOT NULL,
    hour           timestamptz NOT NULL,
    rule           text NOT NULL,
    rule_version   text NOT NULL,
    dimension      text NOT NULL,
    evaluated      bigint NOT NULL,
    passed         bigint NOT NULL,
    warned         bigint NOT NULL,
    failed         bigint NOT NULL,
    not_applicable bigint NOT NULL,
    PRIMARY KEY (device_id, hour, rule, rule_version)
);

CREATE INDEX rule_stats_hour_idx ON rule_stats (hour);

-- The scheduler's progress per rule and version: every signal with
-- id <= last_id has been evaluated (or sampled out). The row is also the
-- lease: an organizer holds it FOR UPDATE (SKIP LOCKED) while it evaluates
-- a batch, and advances last_id in the transaction that writes the batch's
-- findings and statistics.
CREATE TABLE rule_watermarks (
    rule         text NOT NULL,
    rule_version text NOT NULL,
    start_id     bigint NOT NULL,           -- where this version began
    last_id      bigint NOT NULL,
    evaluated    bigint NOT NULL DEFAULT 0, -- signals evaluated by this version
    sampled_out  bigint NOT NULL DEFAULT 0, -- signals skipped by the random-sample mode
    batches      bigint NOT NULL DEFAULT 0,
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL DEFAULT '',  -- node id of the last organizer that advanced it
    PRIMARY KEY (rule, rule_version)
);

-- Batches a rule could not evaluate (trap, timeout, memory, bad return or
-- verdict, disabled). Such signals are "not evaluated", never failed: the
-- watermark stays before them and the batch is retried on the next run
-- until it succeeds, or the host disables the rule after repeated failures.
CREATE TABLE rule_errors (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule         text NOT NULL,
    rule_version text NOT NULL,
    first_id     bigint NOT NULL,
    last_id      bigint NOT NULL,
    signals      int NOT NULL,
    kind         text NOT NULL,
    message      text NOT NULL,
    node         text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX rule_errors_rule_at_idx ON rule_errors (rule, rule_version, at DESC);
