// speed.limit: the hand-written AssemblyScript (checks-wasm/sdk-as)
// equivalent of testdata/speed.limit.check.hcl; the equivalence test and
// benchmark of plugins/checklang build it with asc.
import { Batch, Verdicts, Meta, Test, Field, Status, register } from "../../../../checks-wasm/sdk-as/assembly/index";
export { fc_abi, fc_meta, fc_alloc, fc_check } from "../../../../checks-wasm/sdk-as/assembly/index";

enum Reason { TooFast = 1, Fast = 2 }

register(
  new Meta("speed.limit", "1.0.0", "validity", "warning")
    .reads([Field.Speed])
    .reason(Reason.TooFast, "speed {speed} km/h over the limit")
    .reason(Reason.Fast, "speed {speed} km/h over the limit")
    .test(new Test("cruising", Status.Pass).set(Field.Speed, 90))
    .test(new Test("fast", Status.Warn, Reason.Fast).set(Field.Speed, 170))
    .test(new Test("too fast", Status.Fail, Reason.TooFast).set(Field.Speed, 250))
    .test(new Test("no speed", Status.Pass)),
  (b: Batch, v: Verdicts): void => {
    for (let i = 0; i < b.n; i++) {
      const speed = b.speed(i);
      if (speed > 200) {
        v.fail(i, Reason.TooFast);
      } else if (speed > 160) {
        v.warn(i, Reason.Fast);
      }
    }
  },
);
