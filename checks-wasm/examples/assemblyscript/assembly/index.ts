// example.fuel_range: a fleetcore quality rule (ABI v1) in AssemblyScript.
// Fails a fuel level outside [0, 100] % (reason 1); not applicable when the
// signal carries no fuel level. See checks-wasm/ABI.md.

const META = `{"name":"example.fuel_range","version":"1.0.0","dimension":"validity","severity":"warning",` +
  `"fields":["fuel"],"attrs":[],"reasons":{"1":"fuel level outside [0, 100] %"},` +
  `"tests":[` +
  `{"name":"half","in":{"fuel":50},"want":"pass","reason":0},` +
  `{"name":"100 passes","in":{"fuel":100},"want":"pass","reason":0},` +
  `{"name":"100.5 fails","in":{"fuel":100.5},"want":"fail","reason":1},` +
  `{"name":"negative","in":{"fuel":-1},"want":"fail","reason":1},` +
  `{"name":"absent","in":{},"want":"not_applicable","reason":0}]}`;

const meta: ArrayBuffer = String.UTF8.encode(META);

// The batch buffer: allocated once, grown only for a larger batch.
let buf: ArrayBuffer = new ArrayBuffer(0);

export function fc_abi(): i32 {
  return 1;
}

export function fc_meta(): i64 {
  return (i64(changetype<usize>(meta)) << 32) | i64(meta.byteLength);
}

export function fc_alloc(size: i32): i32 {
  if (size <= 0) return 0;
  if (buf.byteLength < size) buf = new ArrayBuffer(size + 8);
  // Runtime blocks are 16-aligned; the ABI asks for 8.
  return i32(changetype<usize>(buf));
}

const MAGIC: u32 = 0x31424346; // "FCB1" little-endian
const FUEL_BIT: u64 = 1 << 11;

export function fc_check(ptr: i32, n: i32): i32 {
  const p = <usize>ptr;
  if (load<u32>(p) != MAGIC || load<u32>(p + 4) != <u32>n) return -2;
  if (load<u64>(p + 8) != FUEL_BIT || load<u32>(p + 24) != 0) return -2;
  const col = p + 64; // the only column: fuel
  const verdicts = col + 8 * <usize>n;
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const v = load<f64>(col + 8 * <usize>i);
    let w: u32 = 0; // pass
    if (isNaN(v)) {
      w = 3; // not applicable
    } else if (v < 0 || v > 100) {
      w = 2 | (1 << 16); // fail, reason 1
      bad++;
    }
    store<u32>(verdicts + 4 * <usize>i, w);
  }
  return bad;
}
