-- fleetcore 0007: bounded quarantine (core/quarantine).
--
-- A row keeps at most quarantine.max_raw_bytes of the frame; raw_length is
-- the frame's length before that cut. NULL (rows from before this
-- migration, or written by hand) means raw holds the whole frame, so
-- coalesce(raw_length, length(raw)) is always the frame's length, and the
-- migration need not rewrite a table that may be large. Retention deletes
-- by recv (rejected_frames_recv_idx) and by id (the primary key).
ALTER TABLE rejected_frames ADD COLUMN raw_length integer CHECK (raw_length >= 0);
