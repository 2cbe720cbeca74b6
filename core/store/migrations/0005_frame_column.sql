-- fleetcore 0005: raw frames move into signals.
--
-- Writing raw frames to their own table cost one more statement per batch
-- (an INSERT … ON CONFLICT over unnest arrays) on the hot path; measured
-- on the 2-core reference machine it cut batch write throughput by about a
-- third. The first record of each frame now carries the frame's bytes in
-- signals.frame, written by the same COPY; every record keeps frame_hash,
-- so a record's frame is
--   SELECT frame FROM signals WHERE frame_hash = $1 AND frame IS NOT NULL LIMIT 1
-- and re-decoding after a decoder fix reads frames straight from signals.
ALTER TABLE signals ADD COLUMN frame bytea;

UPDATE signals s SET frame = r.frame
FROM raw_frames r,
     (SELECT DISTINCT ON (frame_hash) id, ts FROM signals WHERE frame_hash IS NOT NULL ORDER BY frame_hash, id) first
WHERE first.id = s.id AND first.ts = s.ts AND r.hash = s.frame_hash;

DROP TABLE raw_frames;


-- The unique key (device_id, ts, record_hash) already serves every lookup
-- by device and device time (in either direction), so the separate
-- (device_id, ts DESC) index only cost one more index insert per row.
DROP INDEX signals_device_ts_idx;
