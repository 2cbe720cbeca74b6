-- fleetcore 0001: signals, raw frames, rejected frames.

-- signals is partitioned by device time from the start, so that monthly
-- (or TimescaleDB/Citus) partitions can be attached later without a
-- rewrite. Until then every row lands in signals_default.
CREATE SEQUENCE signals_id_seq AS bigint;

CREATE TABLE signals (
    id           bigint NOT NULL DEFAULT nextval('signals_id_seq'),
    device_id    text NOT NULL,
    ts           timestamptz NOT NULL,
    recv         timestamptz NOT NULL,
    lat          double precision,
    lon          double precision,
    alt          double precision,
    speed        double precision,
    heading      double precision,
    sats         double precision,
    hdop         double precision,
    valid        boolean,
    rpm          double precision,
    coolant      double precision,
    fuel         double precision,
    voltage      double precision,
    odometer     double precision,
    engine_load  double precision,
    throttle     double precision,
    dtcs         text[],
    attrs        jsonb,
    protocol     text NOT NULL,
    path         text NOT NULL CHECK (path IN ('direct', 'failover', 'spool')),
    record_hash  bigint NOT NULL,
    frame_hash   bigint,
    stored       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT signals_idempotency UNIQUE (device_id, ts, record_hash)
) PARTITION BY RANGE (ts);

ALTER SEQUENCE signals_id_seq OWNED BY signals.id;

CREATE TABLE signals_default PARTITION OF signals DEFAULT;

CREATE INDEX signals_id_idx ON signals (id);
CREATE INDEX signals_device_ts_idx ON signals (device_id, ts DESC);

-- Raw frames, once per frame, so a record can be re-decoded after a
-- decoder fix. signals.frame_hash points here.
CREATE TABLE raw_frames (
    hash       bigint PRIMARY KEY,
    protocol   text NOT NULL,
    frame      bytea NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);

-- Frames that were rejected (bad CRC, bad length, garbage, refused
-- device): never acked, kept with the reason and the raw bytes.
CREATE TABLE rejected_frames (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recv        timestamptz NOT NULL,
    remote_addr text NOT NULL,
    listener    text NOT NULL,
    protocol    text NOT NULL,
    device_id   text,
    reason      text NOT NULL,
    raw         bytea NOT NULL
);

CREATE INDEX rejected_frames_recv_idx ON rejected_frames (recv DESC);
