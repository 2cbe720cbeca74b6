// example.obd_plausibility: a fleetcore quality rule (ABI v1) written in
// AssemblyScript with the rule SDK (checks-wasm/sdk-as). It is the
// AssemblyScript port of the built-in Go rule obd.plausibility
// (checks-wasm/rules/other.go), and a test holds both to the same verdicts
// on random batches (checks-wasm/examples/examples_test.go).
//
// Fails engine values outside physical envelopes: rpm outside [0, 10000]
// (reason 1), coolant outside [-40, 150] °C (reason 2), supply voltage
// outside [6, 32] V (reason 3); warns on rpm above zero while the ignition
// attribute says off (reason 4). Not applicable without any of the three.

import { Batch, Verdicts, Meta, Test, Field, Status, register } from "../../../sdk-as/assembly/index";
export { fc_abi, fc_meta, fc_alloc, fc_check } from "../../../sdk-as/assembly/index";

enum Reason { RPM = 1, Coolant = 2, Voltage = 3, EngineWithIgnitionOff = 4 }

const IGNITION = 0; // index of the "ignition" attribute

register(
  new Meta("example.obd_plausibility", "1.0.0", "validity", "warning")
    .reads([Field.RPM, Field.Coolant, Field.Voltage])
    .attributes(["ignition"])
    .reason(Reason.RPM, "rpm outside [0, 10000]")
    .reason(Reason.Coolant, "coolant temperature outside [-40, 150] °C")
    .reason(Reason.Voltage, "supply voltage outside [6, 32] V")
    .reason(Reason.EngineWithIgnitionOff, "engine turning (rpm > 0) with the ignition off")
    .test(new Test("idle", Status.Pass).set(Field.RPM, 800).set(Field.Coolant, 90).set(Field.Voltage, 14.1).attr("ignition", 1))
    .test(new Test("rpm 10000 passes", Status.Pass).set(Field.RPM, 10000))
    .test(new Test("rpm 10001 fails", Status.Fail, Reason.RPM).set(Field.RPM, 10001))
    .test(new Test("coolant 151", Status.Fail, Reason.Coolant).set(Field.Coolant, 151))
    .test(new Test("voltage 5.9", Status.Fail, Reason.Voltage).set(Field.Voltage, 5.9))
    .test(new Test("rpm with ignition off", Status.Warn, Reason.EngineWithIgnitionOff).set(Field.RPM, 750).attr("ignition", 0))
    .test(new Test("absent", Status.NotApplicable).attr("ignition", 1)),
  (b: Batch, v: Verdicts): void => {
    for (let i = 0; i < b.n; i++) {
      const rpm = b.rpm(i), coolant = b.coolant(i), volts = b.voltage(i);
      const hasRPM = b.has(i, Field.RPM);
      if (!hasRPM && !b.has(i, Field.Coolant) && !b.has(i, Field.Voltage)) {
        v.notApplicable(i);
      } else if (hasRPM && !(rpm >= 0 && rpm <= 10000)) {
        v.fail(i, Reason.RPM);
      } else if (b.has(i, Field.Coolant) && !(coolant >= -40 && coolant <= 150)) {
        v.fail(i, Reason.Coolant);
      } else if (b.has(i, Field.Voltage) && !(volts >= 6 && volts <= 32)) {
        v.fail(i, Reason.Voltage);
      } else if (hasRPM && rpm > 0 && b.attr(i, IGNITION) == 0) {
        v.warn(i, Reason.EngineWithIgnitionOff);
      }
    }
  },
);
