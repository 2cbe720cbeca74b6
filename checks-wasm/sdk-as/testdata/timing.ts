// Test fixture of the AssemblyScript SDK (checks-wasm/examples/assemblyscript_test.go):
// time columns (i64 ms, absent = NO_TIME), the batch clock, attributes by
// index, has() on an undeclared field, and metadata text that needs JSON
// escaping.
import { Batch, Verdicts, Meta, Test, Field, Status, register, NO_TIME } from "../assembly/index";
export { fc_abi, fc_meta, fc_alloc, fc_check } from "../assembly/index";

const T0: i64 = 1767225600000;

register(
  new Meta("sdktest.timing", "0.1.0-rc.1", "timeliness", "info")
    .reads([Field.Speed, Field.PrevTS, Field.TS, Field.Recv])
    .attributes(["a", "b"])
    .reason(1, "device time before the previous signal's")
    .reason(2, "received over a minute late")
    .reason(3, "older than an hour at the \"host\" clock \\ tab\t")
    .reason(4, "no speed while b = 1")
    .reason(5, "undeclared field seen")
    .test(new Test("fresh", Status.Pass).now(T0).set(Field.TS, <f64>T0).set(Field.Speed, 3.25))
    .test(new Test("old", Status.Fail, 3).now(T0 + 3600001).set(Field.TS, <f64>T0).set(Field.Speed, 1))
    .test(new Test("back", Status.Fail, 1).now(T0).set(Field.TS, <f64>T0).set(Field.PrevTS, <f64>(T0 + 1)))
    .test(new Test("late", Status.Warn, 2).now(T0).set(Field.TS, <f64>T0).set(Field.Recv, <f64>(T0 + 60001)).set(Field.Speed, 0))
    .test(new Test("b set", Status.Warn, 4).now(T0).set(Field.TS, <f64>T0).attr("a", 0.5).attr("b", 1))
    .test(new Test("no ts", Status.NotApplicable)),
  (b: Batch, v: Verdicts): void => {
    for (let i = 0; i < b.n; i++) {
      const ts = b.ts(i);
      if (!b.has(i, Field.TS)) {
        v.notApplicable(i);
      } else if (b.has(i, Field.PrevTS) && ts - b.prevTS(i) < 0) {
        v.fail(i, 1);
      } else if (b.recv(i) != NO_TIME && b.recv(i) - ts > 60000) {
        v.warn(i, 2);
      } else if (b.nowMs - ts > 3600000) {
        v.fail(i, 3);
      } else if (!b.has(i, Field.Speed) && b.attr(i, 1) == 1) {
        v.warn(i, 4);
      } else if (b.has(i, Field.Lat) || b.lat(i) == b.lat(i) || b.attr(i, 2) == b.attr(i, 2)) {
        v.fail(i, 5); // undeclared: never present, NaN
      }
    }
  },
);
