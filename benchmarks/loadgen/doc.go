// Package loadgen simulates fleets of tracking devices speaking the real
// device protocols (Teltonika, GT06 and Ruptela over TCP, OsmAnd over
// HTTP, jsonl over TCP) over real sockets, for `fleetcore simulate` and the benchmark
// suite.
//
// Each simulated device has its own IMEI, record rate and records per
// frame, and behaves like the hardware: it keeps every record until the
// server acknowledges it and resends after a timeout or a reconnect. A
// configurable share of the records is bad data (zero fixes, future
// timestamps, resent duplicates, frames with a corrupted checksum) so the
// quality pipeline has work.
//
// The generator remembers the identity (device, device time) of every
// record the server acknowledged, so a run can be checked against the
// database (Verify): lost = acknowledged but not stored, duplicates =
// stored more than once. fleetcore's own counters play no part in that.
package loadgen
