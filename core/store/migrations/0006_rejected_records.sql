-- fleetcore 0006: records Postgres refused.
--
-- A record that reaches a batch and is refused by Postgres for its data
-- (a check constraint, an index row too large, a value out of range …) is
-- isolated by the store's write path; the rest of the batch is committed.
-- The refused record is kept here, in a form that cannot itself be
-- refused: the whole record as bytes (the signal batch codec of
-- core/signal, one record with its raw frame), its device ID escaped and
-- cut to 256 bytes (device_id_len keeps the original length). acked says
-- whether the device was acked for it (it came through a failover tier
-- and was refused on replay): those records are counted, alerted on and
-- listed by GET /api/rejected/records, never dropped silently.
--
-- One row per device, device time, record hash and acked (record_key is
-- a SHA-256 of them over the whole device ID): a device resending the
-- same poison record bumps seen and last_at instead of adding rows.
CREATE TABLE rejected_records (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_key    bytea NOT NULL,
    first_at      timestamptz NOT NULL DEFAULT now(),
    last_at       timestamptz NOT NULL DEFAULT now(),
    seen          bigint NOT NULL DEFAULT 1,
    device_id     text NOT NULL,
    device_id_len int NOT NULL,
    ts            timestamptz,          -- NULL when outside Postgres's range
    ts_us         bigint NOT NULL,      -- device time, Unix microseconds
    protocol      text NOT NULL,
    path          text NOT NULL CHECK (path IN ('direct', 'failover', 'spool')),
    acked         boolean NOT NULL,
    record_hash   bigint NOT NULL,
    sqlstate      text NOT NULL,
    reason        text NOT NULL,
    record        bytea NOT NULL
);

CREATE UNIQUE INDEX rejected_records_key_idx ON rejected_records (record_key);
CREATE INDEX rejected_records_device_idx ON rejected_records (device_id, id);
