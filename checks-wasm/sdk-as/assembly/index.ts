// fleetcore rule SDK for AssemblyScript (rule ABI v1, checks-wasm/ABI.md).
//
// A rule declares its metadata in code and registers a check that judges a
// batch through typed columns:
//
//   import { Batch, Verdicts, Meta, Test, Field, Status, register } from "../../../sdk-as/assembly/index";
//   export { fc_abi, fc_meta, fc_alloc, fc_check } from "../../../sdk-as/assembly/index";
//
//   register(new Meta("fuel.range", "1.0.0", "validity", "warning")
//       .reads([Field.Fuel]).reason(1, "fuel level outside [0, 100] %")
//       .test(new Test("half", Status.Pass).set(Field.Fuel, 50)),
//     (b: Batch, v: Verdicts): void => {
//       for (let i = 0; i < b.n; i++) {
//         if (!b.has(i, Field.Fuel)) v.notApplicable(i);
//         else if (b.fuel(i) < 0 || b.fuel(i) > 100) v.fail(i, 1);
//       }
//     });
//
// Every verdict starts as pass. The SDK checks the batch header against the
// declared fields and attributes, counts warn and fail verdicts for the
// host, and keeps one batch buffer across calls (build with
// `--runtime stub`: nothing is allocated per batch).

/** Canonical field indexes of rule ABI v1 (same numbering as signal.Field*). */
export enum Field {
  TS = 0, Recv, Lat, Lon, Alt, Speed, Heading, Sats, HDOP, RPM, Coolant, Fuel,
  Voltage, Odometer, EngineLoad, Throttle, PrevTS, PrevLat, PrevLon, PrevOdometer,
}

/** Number of canonical fields. */
export const NUM_FIELDS: i32 = 20;

/** The canonical field names by index. */
export const FIELD_NAMES: StaticArray<string> = [
  "ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop",
  "rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle",
  "prev_ts", "prev_lat", "prev_lon", "prev_odometer",
];

/** The value of an absent time (ts, recv, prev_ts). */
export const NO_TIME: i64 = i64.MIN_VALUE;

/** Statuses, as encoded in the verdict bytes. */
export enum Status { Pass = 0, Warn = 1, Fail = 2, NotApplicable = 3 }

const STATUS_NAMES: StaticArray<string> = ["pass", "warn", "fail", "not_applicable"];

/** Error codes fc_check returns (as the Go SDK). */
export const ERR_NO_RULE: i32 = -1;
export const ERR_BAD_HEADER: i32 = -2;
export const ERR_BAD_SIZE: i32 = -3;
export const ERR_TOO_MANY_ATTRS: i32 = -4;

/** The most attributes a rule may declare (as the Go SDK). */
export const MAX_ATTRS: i32 = 16;

function isTime(f: i32): bool {
  return f == Field.TS || f == Field.Recv || f == Field.PrevTS;
}

/** One self-test case: one signal, the host's clock and the expected verdict. */
export class Test {
  nowMs: i64 = 0;
  fields: Array<i32> = [];
  values: Array<f64> = [];
  attrNames: Array<string> = [];
  attrValues: Array<f64> = [];

  constructor(public name: string, public want: Status, public reason: i32 = 0) {}

  /** Sets a canonical field (times in Unix ms). Fields not set are absent. */
  set(f: Field, v: f64): Test {
    this.fields.push(f);
    this.values.push(v);
    return this;
  }

  /** Sets a declared attribute. */
  attr(name: string, v: f64): Test {
    this.attrNames.push(name);
    this.attrValues.push(v);
    return this;
  }

  /** Sets the host's clock (Unix ms). */
  now(ms: i64): Test {
    this.nowMs = ms;
    return this;
  }
}

/** The rule's metadata (ABI.md "Metadata"), declared in code. */
export class Meta {
  fields: Array<i32> = [];
  attrs: Array<string> = [];
  codes: Array<i32> = [];
  texts: Array<string> = [];
  tests: Array<Test> = [];

  constructor(public name: string, public version: string, public dimension: string, public severity: string) {}

  /** Declares the canonical fields the rule reads (any order). */
  reads(fs: Array<Field>): Meta {
    for (let i = 0; i < fs.length; i++) {
      if (!this.fields.includes(fs[i])) this.fields.push(fs[i]);
    }
    this.fields.sort((a: i32, b: i32): i32 => a - b);
    return this;
  }

  /** Declares the attributes the rule reads, in the order Batch.attr indexes them. */
  attributes(names: Array<string>): Meta {
    for (let i = 0; i < names.length; i++) this.attrs.push(names[i]);
    return this;
  }

  /** Declares a reason code (1..65535; an enum member works) and its text. */
  reason(code: i32, text: string): Meta {
    this.codes.push(code);
    this.texts.push(text);
    return this;
  }

  /** Adds a self-test the host runs before the rule goes live. */
  test(t: Test): Meta {
    this.tests.push(t);
    return this;
  }

  /** The field mask the host sends: bit i = canonical field i. */
  mask(): u64 {
    let m: u64 = 0;
    for (let i = 0; i < this.fields.length; i++) m |= (<u64>1) << <u64>this.fields[i];
    return m;
  }

  /** The metadata as the ABI's JSON document. */
  json(): string {
    let s = `{"name":` + quote(this.name) + `,"version":` + quote(this.version) +
      `,"dimension":` + quote(this.dimension) + `,"severity":` + quote(this.severity) + `,"fields":[`;
    for (let i = 0; i < this.fields.length; i++) {
      if (i > 0) s += ",";
      s += quote(FIELD_NAMES[this.fields[i]]);
    }
    s += `],"attrs":[`;
    for (let i = 0; i < this.attrs.length; i++) {
      if (i > 0) s += ",";
      s += quote(this.attrs[i]);
    }
    s += `],"reasons":{`;
    for (let i = 0; i < this.codes.length; i++) {
      if (i > 0) s += ",";
      s += quote(this.codes[i].toString()) + ":" + quote(this.texts[i]);
    }
    s += "}";
    if (this.tests.length > 0) {
      s += `,"tests":[`;
      for (let i = 0; i < this.tests.length; i++) {
        const t = this.tests[i];
        if (i > 0) s += ",";
        s += `{"name":` + quote(t.name);
        if (t.nowMs != 0) s += `,"now_ms":` + t.nowMs.toString();
        s += `,"in":{`;
        for (let k = 0; k < t.fields.length; k++) {
          if (k > 0) s += ",";
          s += quote(FIELD_NAMES[t.fields[k]]) + ":" + number(t.values[k], isTime(t.fields[k]));
        }
        s += "}";
        if (t.attrNames.length > 0) {
          s += `,"attrs":{`;
          for (let k = 0; k < t.attrNames.length; k++) {
            if (k > 0) s += ",";
            s += quote(t.attrNames[k]) + ":" + number(t.attrValues[k], false);
          }
          s += "}";
        }
        s += `,"want":` + quote(STATUS_NAMES[<i32>t.want]) + `,"reason":` + t.reason.toString() + "}";
      }
      s += "]";
    }
    return s + "}";
  }
}

function number(v: f64, time: bool): string {
  if (time || (v == Math.floor(v) && Math.abs(v) < 9007199254740992)) return (<i64>v).toString();
  return v.toString();
}

function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) {
      out += "\\" + String.fromCharCode(c);
    } else if (c < 0x20) {
      const hex = "0123456789abcdef";
      out += "\\u00" + hex.charAt(c >> 4) + hex.charAt(c & 15);
    } else {
      out += String.fromCharCode(c);
    }
  }
  return out + '"';
}

/** The batch the host sent: typed columns of the declared fields. */
export class Batch {
  /** Signals in the batch. */
  n: i32 = 0;
  /** The host's clock for the batch, Unix ms (rules never read a clock). */
  nowMs: i64 = 0;
  cols: StaticArray<usize> = new StaticArray<usize>(NUM_FIELDS);
  attrCols: StaticArray<usize> = new StaticArray<usize>(MAX_ATTRS);
  nattrs: i32 = 0;

  /** Field f of signal i as f64 (NaN when absent or not declared; times as ms). */
  @inline value(i: i32, f: Field): f64 {
    if (isTime(f)) {
      const t = this.time(i, f);
      return t == NO_TIME ? NaN : <f64>t;
    }
    const c = unchecked(this.cols[f]);
    return c == 0 ? NaN : load<f64>(c + (<usize>i << 3));
  }

  /** Time field f of signal i, Unix ms (NO_TIME when absent or not declared). */
  @inline time(i: i32, f: Field): i64 {
    const c = unchecked(this.cols[f]);
    return c == 0 ? NO_TIME : load<i64>(c + (<usize>i << 3));
  }

  /** Whether field f of signal i is present. */
  @inline has(i: i32, f: Field): bool {
    const c = unchecked(this.cols[f]);
    if (c == 0) return false;
    if (isTime(f)) return load<i64>(c + (<usize>i << 3)) != NO_TIME;
    const v = load<f64>(c + (<usize>i << 3));
    return v == v;
  }

  /** Attribute a (index in Meta.attributes) of signal i; NaN when absent. */
  @inline attr(i: i32, a: i32): f64 {
    if (a < 0 || a >= this.nattrs) return NaN;
    return load<f64>(unchecked(this.attrCols[a]) + (<usize>i << 3));
  }

  @inline ts(i: i32): i64 { return this.time(i, Field.TS); }
  @inline recv(i: i32): i64 { return this.time(i, Field.Recv); }
  @inline prevTS(i: i32): i64 { return this.time(i, Field.PrevTS); }
  @inline lat(i: i32): f64 { return this.value(i, Field.Lat); }
  @inline lon(i: i32): f64 { return this.value(i, Field.Lon); }
  @inline alt(i: i32): f64 { return this.value(i, Field.Alt); }
  @inline speed(i: i32): f64 { return this.value(i, Field.Speed); }
  @inline heading(i: i32): f64 { return this.value(i, Field.Heading); }
  @inline sats(i: i32): f64 { return this.value(i, Field.Sats); }
  @inline hdop(i: i32): f64 { return this.value(i, Field.HDOP); }
  @inline rpm(i: i32): f64 { return this.value(i, Field.RPM); }
  @inline coolant(i: i32): f64 { return this.value(i, Field.Coolant); }
  @inline fuel(i: i32): f64 { return this.value(i, Field.Fuel); }
  @inline voltage(i: i32): f64 { return this.value(i, Field.Voltage); }
  @inline odometer(i: i32): f64 { return this.value(i, Field.Odometer); }
  @inline engineLoad(i: i32): f64 { return this.value(i, Field.EngineLoad); }
  @inline throttle(i: i32): f64 { return this.value(i, Field.Throttle); }
  @inline prevLat(i: i32): f64 { return this.value(i, Field.PrevLat); }
  @inline prevLon(i: i32): f64 { return this.value(i, Field.PrevLon); }
  @inline prevOdometer(i: i32): f64 { return this.value(i, Field.PrevOdometer); }
}

/** The verdicts of a batch; every signal starts as pass. */
export class Verdicts {
  base: usize = 0;
  n: i32 = 0;

  @inline private put(i: i32, status: u32, reason: i32): void {
    if (i < 0 || i >= this.n) return;
    store<u32>(this.base + (<usize>i << 2), status | ((<u32>reason & 0xffff) << 16));
  }

  pass(i: i32): void { this.put(i, Status.Pass, 0); }
  /** Flags a suspicious signal with a reason code of the metadata. */
  warn(i: i32, reason: i32): void { this.put(i, Status.Warn, reason); }
  /** Flags a signal that breaks the rule with a reason code of the metadata. */
  fail(i: i32, reason: i32): void { this.put(i, Status.Fail, reason); }
  /** The rule cannot judge the signal (fields absent). */
  notApplicable(i: i32): void { this.put(i, Status.NotApplicable, 0); }
}

function noCheck(b: Batch, v: Verdicts): void {}

let registered: Meta | null = null;
let check: (b: Batch, v: Verdicts) => void = noCheck;
let metaBuf: ArrayBuffer = new ArrayBuffer(0);
let wantMask: u64 = 0;
const batch = new Batch();
const verdicts = new Verdicts();

/** Installs the rule of this module (call it at the top level). */
export function register(meta: Meta, fn: (b: Batch, v: Verdicts) => void): void {
  registered = meta;
  check = fn;
  metaBuf = String.UTF8.encode(meta.json());
  wantMask = meta.mask();
}

// The batch buffer: allocated once, grown only for a larger batch.
let buf: ArrayBuffer = new ArrayBuffer(0);

export function fc_abi(): i32 {
  return 1;
}

export function fc_meta(): i64 {
  return (i64(changetype<usize>(metaBuf)) << 32) | i64(metaBuf.byteLength);
}

export function fc_alloc(size: i32): i32 {
  if (size <= 0 || size > (1 << 30)) return 0;
  if (buf.byteLength < size) buf = new ArrayBuffer(size + 8);
  // Runtime blocks are 16-aligned; the ABI asks for 8.
  return i32(changetype<usize>(buf));
}

const MAGIC: u32 = 0x31424346; // "FCB1" little-endian

export function fc_check(ptr: i32, n: i32): i32 {
  const meta = registered;
  if (meta == null) return ERR_NO_RULE;
  const p = <usize>ptr;
  if (p != changetype<usize>(buf) || n < 0) return ERR_BAD_SIZE;
  if (load<u32>(p) != MAGIC || load<u32>(p + 4) != <u32>n || load<u64>(p + 8) != wantMask) return ERR_BAD_HEADER;
  const nattrs = <i32>load<u32>(p + 24);
  if (nattrs > MAX_ATTRS) return ERR_TOO_MANY_ATTRS;
  if (nattrs != meta.attrs.length) return ERR_BAD_HEADER;
  const ncols = meta.fields.length;
  const size = <i64>64 + <i64>8 * <i64>n * <i64>(ncols + nattrs) + <i64>4 * <i64>n;
  if (size > <i64>buf.byteLength) return ERR_BAD_SIZE;
  const stride = <usize>8 * <usize>n;
  for (let f = 0; f < NUM_FIELDS; f++) unchecked(batch.cols[f] = 0);
  let col = p + 64;
  for (let k = 0; k < ncols; k++) {
    unchecked(batch.cols[meta.fields[k]] = col);
    col += stride;
  }
  for (let a = 0; a < nattrs; a++) {
    unchecked(batch.attrCols[a] = col);
    col += stride;
  }
  batch.n = n;
  batch.nowMs = load<i64>(p + 16);
  batch.nattrs = nattrs;
  verdicts.base = col;
  verdicts.n = n;
  check(batch, verdicts);
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const s = load<u32>(col + (<usize>i << 2)) & 0xff;
    if (s == Status.Warn || s == Status.Fail) bad++;
  }
  return bad;
}
