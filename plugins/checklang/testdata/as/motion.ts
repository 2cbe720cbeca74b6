// equiv.motion: the hand-written AssemblyScript (checks-wasm/sdk-as)
// equivalent of testdata/equiv.motion.check.hcl, spelling out the check
// language's semantics by hand as testdata/go/motion does: absent values
// are NaN, a comparison with NaN is false (!= included), times are Unix ms
// as f64. The equivalence test and benchmark build it with asc.
import { Batch, Verdicts, Meta, Test, Field, Status, register, NO_TIME } from "../../../../checks-wasm/sdk-as/assembly/index";
export { fc_abi, fc_meta, fc_alloc, fc_check } from "../../../../checks-wasm/sdk-as/assembly/index";

enum Reason { Position = 1, Implausible = 2 }

const IGNITION = 0; // index of the "ignition" attribute
const EARTH_RADIUS_KM = 6371.0088;
const DEG = Math.PI / 180;
const T0: i64 = 1767225600000;

@inline function missing(x: f64): bool { return x != x; }

// The language's !=: false when either side is missing.
@inline function ne(a: f64, b: f64): bool { return a < b || a > b; }

function haversineKm(lat1: f64, lon1: f64, lat2: f64, lon2: f64): f64 {
  const p1 = lat1 * DEG, p2 = lat2 * DEG;
  const dp = (lat2 - lat1) * DEG, dl = (lon2 - lon1) * DEG;
  const a = Math.sin(dp / 2) * Math.sin(dp / 2) + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) * Math.sin(dl / 2);
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

register(
  new Meta("equiv.motion", "1.0.0", "consistency", "critical")
    .reads([Field.TS, Field.Recv, Field.Lat, Field.Lon, Field.Speed, Field.Heading, Field.RPM, Field.Fuel,
      Field.Odometer, Field.PrevTS, Field.PrevLat, Field.PrevLon, Field.PrevOdometer])
    .attributes(["ignition"])
    .reason(Reason.Position, "position out of range or implied speed above 300 km/h")
    .reason(Reason.Implausible, "implausible motion, engine or time values")
    .test(new Test("still", Status.Pass).now(T0).set(Field.Lat, 45).set(Field.Lon, 7)
      .set(Field.TS, <f64>T0).set(Field.Recv, <f64>T0).set(Field.Fuel, 50))
    .test(new Test("no position", Status.NotApplicable))
    .test(new Test("bad latitude", Status.Fail, Reason.Position).set(Field.Lat, 91).set(Field.Lon, 7))
    .test(new Test("moving with ignition off", Status.Warn, Reason.Implausible).now(T0).set(Field.Lat, 45).set(Field.Lon, 7)
      .set(Field.Speed, 30).set(Field.TS, <f64>T0).set(Field.Recv, <f64>T0).attr("ignition", 0)),
  (b: Batch, v: Verdicts): void => {
    const now: f64 = b.nowMs == NO_TIME ? NaN : <f64>b.nowMs;
    for (let i = 0; i < b.n; i++) {
      const lat = b.lat(i), lon = b.lon(i);
      if (missing(lat) || missing(lon)) {
        v.notApplicable(i);
        continue;
      }
      const ts = b.value(i, Field.TS), recv = b.value(i, Field.Recv), prevTS = b.value(i, Field.PrevTS);
      const prevLat = b.prevLat(i), prevLon = b.prevLon(i);
      const dt = (ts - prevTS) / 1000;
      let dist: f64 = NaN; // distance_m() is missing between non-positions
      if (Math.abs(lat) <= 90 && Math.abs(prevLat) <= 90 && Math.abs(lon) <= 180 && Math.abs(prevLon) <= 180) {
        dist = haversineKm(prevLat, prevLon, lat, lon) * 1000;
      }
      if (!(-90 <= lat && lat <= 90) || Math.abs(lon) > 180 || (dt > 0 && dist / dt * 3.6 > 300)) {
        v.fail(i, Reason.Position);
        continue;
      }
      const ignition = b.attr(i, IGNITION);
      if ((b.speed(i) > 5 && ignition == 0) ||
        (now - ts) / 1000 > 3600 ||
        Math.max(b.rpm(i), 0) / 60 > 100 ||
        -b.heading(i) < -360 ||
        (ne(ts - recv, 0) && missing(b.fuel(i))) ||
        Math.min(b.odometer(i) - b.prevOdometer(i), 1000) < 0) {
        v.warn(i, Reason.Implausible);
      }
    }
  },
);
