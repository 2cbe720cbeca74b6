// Package quarantine owns what happens to a frame the gateway refused:
// the evidence kept in the rejected_frames table, and the bounds that keep
// a flood of bad frames from costing anyone else.
//
//   - Writer takes rejections without ever blocking the caller (a device's
//     read loop): it sanitizes every text field (invalid UTF-8 and NUL
//     escaped, lengths capped), keeps at most Config.MaxRawBytes of the raw
//     bytes with their original length, and hands rows to one background
//     goroutine through a bounded queue, which writes them in batches. A
//     full queue drops the rejection with a count; quarantine rows are
//     evidence, not acked data.
//   - A token bucket per source (remote IP; an IPv6 /64 counts as one
//     source) and one for all sources bound the rows and the log lines a
//     source can cause; what they hold back is counted and summarised in
//     one log line per source and minute.
//   - Retention deletes rows older than the configured age, and the oldest
//     rows beyond a row cap, in bounded chunks (an organizer job).
//   - PGSink writes rows to Postgres with one COPY per batch.
//
// The stage's counters are in Writer.Stats and Retention.Stats.
package quarantine
