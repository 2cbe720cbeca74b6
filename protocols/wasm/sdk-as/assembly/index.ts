// fleetcore decoder SDK for AssemblyScript: the guest side of the decoder
// ABI v1 (protocols/wasm/ABI.md). A decoder imports this file, re-exports
// fc_abi, fc_alloc and fc_error, and writes its own fc_meta, fc_frame and
// fc_decode with the helpers below (see README.md).
//
// Built with `--runtime stub`: nothing is ever freed, so nothing on the
// call path allocates. Buffers grow once to the largest size seen and are
// reused; messages are appended to a buffer, never concatenated as strings.

// ---- error codes (ABI.md §2) -------------------------------------------

export const MALFORMED: i32 = -1;
export const CHECKSUM: i32 = -2;
export const TOO_LARGE: i32 = -3;
export const UNAUTHORIZED: i32 = -4;
export const NO_DEVICE: i32 = -5;
export const UNSUPPORTED: i32 = -6;

// Transports in the input.
export const TCP: u8 = 1;
export const UDP: u8 = 2;

// Canonical field bits of a record (ABI.md §4, Record).
export const F_TS: i32 = 0;
export const F_LAT: i32 = 2;
export const F_LON: i32 = 3;
export const F_ALT: i32 = 4;
export const F_SPEED: i32 = 5;
export const F_HEADING: i32 = 6;
export const F_SATS: i32 = 7;
export const F_HDOP: i32 = 8;
export const F_RPM: i32 = 9;
export const F_COOLANT: i32 = 10;
export const F_FUEL: i32 = 11;
export const F_VOLTAGE: i32 = 12;
export const F_ODOMETER: i32 = 13;
export const F_ENGINE_LOAD: i32 = 14;
export const F_THROTTLE: i32 = 15;

// Record valid byte.
export const VALID_UNKNOWN: u8 = 0;
export const VALID_FALSE: u8 = 1;
export const VALID_TRUE: u8 = 2;

// Record stamp byte: how a record without ts gets its server time.
export const STAMP_MS: u8 = 0;
export const STAMP_SECOND: u8 = 1;

// ---- Buf: a growable byte buffer in linear memory -----------------------

export class Buf {
  ptr: usize = 0;
  len: u32 = 0;
  cap: u32 = 0;

  @inline reset(): void {
    this.len = 0;
  }

  ensure(n: u32): void {
    const need = this.len + n;
    if (need <= this.cap) return;
    let nc = this.cap * 2;
    if (nc < need + 64) nc = need + 64;
    const np = heap.alloc(<usize>nc);
    if (this.len > 0) memory.copy(np, this.ptr, <usize>this.len);
    this.ptr = np;
    this.cap = nc;
  }

  @inline u8(v: u32): void {
    this.ensure(1);
    store<u8>(this.ptr + <usize>this.len, <u8>v);
    this.len += 1;
  }

  @inline u16le(v: u32): void {
    this.ensure(2);
    store<u16>(this.ptr + <usize>this.len, <u16>v);
    this.len += 2;
  }

  @inline u32le(v: u32): void {
    this.ensure(4);
    store<u32>(this.ptr + <usize>this.len, v);
    this.len += 4;
  }

  @inline i64le(v: i64): void {
    this.ensure(8);
    store<i64>(this.ptr + <usize>this.len, v);
    this.len += 8;
  }

  @inline f64le(v: f64): void {
    this.ensure(8);
    store<f64>(this.ptr + <usize>this.len, v);
    this.len += 8;
  }

  @inline u16be(v: u32): void {
    this.u8(v >> 8);
    this.u8(v);
  }

  bytes(p: usize, n: u32): void {
    this.ensure(n);
    memory.copy(this.ptr + <usize>this.len, p, <usize>n);
    this.len += n;
  }

  // ascii appends the characters of s, which must be ASCII (names,
  // messages, digits): no conversion buffer is allocated.
  ascii(s: string): void {
    const n = <u32>s.length;
    this.ensure(n);
    const d = this.ptr + <usize>this.len;
    for (let i: u32 = 0; i < n; i++) store<u8>(d + <usize>i, <u8>s.charCodeAt(<i32>i));
    this.len += n;
  }

  // dec appends v in decimal.
  dec(v: i64): void {
    if (v < 0) {
      this.u8(0x2d);
      v = -v;
    }
    let div: i64 = 1;
    while (v / div >= 10) div *= 10;
    while (div > 0) {
      this.u8(<u32>(0x30 + (v / div) % 10));
      div /= 10;
    }
  }

  // hex appends n bytes at p as lower-case hex.
  hex(p: usize, n: u32): void {
    for (let i: u32 = 0; i < n; i++) {
      const b = <u32>load<u8>(p + <usize>i);
      this.u8(hexDigit(b >> 4));
      this.u8(hexDigit(b & 15));
    }
  }

  @inline at(i: u32): u8 {
    return load<u8>(this.ptr + <usize>i);
  }
}

@inline function hexDigit(v: u32): u32 {
  return v < 10 ? 0x30 + v : 0x57 + v;
}

// ---- big-endian reads of guest memory (the data is the device's) ---------

@inline export function u8at(p: usize): u32 {
  return <u32>load<u8>(p);
}

@inline export function be16(p: usize): u32 {
  return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p + 1);
}

@inline export function be24(p: usize): u32 {
  return (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + 1) << 8) | <u32>load<u8>(p + 2);
}

@inline export function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}

@inline export function be64(p: usize): u64 {
  return bswap<u64>(load<u64>(p));
}

// ---- exports every decoder re-exports ------------------------------------

let inBuf: usize = 0;
let inCap: i32 = 0;

// fc_abi returns the ABI version, 1.
export function fc_abi(): i32 {
  return 1;
}

// fc_alloc returns the input buffer, grown to size when needed.
export function fc_alloc(size: i32): i32 {
  if (size <= 0) return 0;
  if (size > inCap) {
    inBuf = heap.alloc(<usize>size + 8);
    inCap = size;
  }
  return <i32>inBuf;
}

const frameMsg = new Buf();

// fc_error returns the message of the last negative fc_frame.
export function fc_error(): i64 {
  return ptrLen(frameMsg.ptr, frameMsg.len);
}

// ptrLen packs a pointer and a length as ABI results are.
@inline export function ptrLen(p: usize, n: u32): i64 {
  return (<i64>p << 32) | <i64>n;
}

// metaOf returns fc_meta's result for the encoded metadata.
export function metaOf(meta: ArrayBuffer): i64 {
  return ptrLen(changetype<usize>(meta), <u32>meta.byteLength);
}

// ---- input (ABI.md §3) ---------------------------------------------------

const IN_MAGIC: u32 = 0x31494346; // "FCI1"

export let transport: u8 = 0;
export let recvMs: i64 = 0;
export let maxFrame: u32 = 0;
export let optionsPtr: usize = 0;
export let optionsLen: u32 = 0;
export let statePtr: usize = 0;
export let stateLen: u32 = 0;
export let dataPtr: usize = 0;
export let dataLen: u32 = 0;

// readInput parses the input header at ptr; false when the input breaks
// the layout (which only a broken host does).
export function readInput(ptr: i32, len: i32): bool {
  const p = <usize>ptr;
  if (len < 32 || load<u32>(p) != IN_MAGIC) return false;
  transport = load<u8>(p + 4);
  recvMs = load<i64>(p + 8);
  maxFrame = load<u32>(p + 16);
  optionsLen = load<u32>(p + 20);
  stateLen = load<u32>(p + 24);
  dataLen = load<u32>(p + 28);
  if (<u64>32 + <u64>optionsLen + <u64>stateLen + <u64>dataLen != <u64>len) return false;
  optionsPtr = p + 32;
  statePtr = optionsPtr + <usize>optionsLen;
  dataPtr = statePtr + <usize>stateLen;
  return true;
}

// dataAt is byte i of the data.
@inline export function dataAt(i: u32): u32 {
  return <u32>load<u8>(dataPtr + <usize>i);
}

// bytesEqual reports whether the n bytes at p are the ASCII string s.
export function bytesEqual(p: usize, n: u32, s: string): bool {
  if (<u32>s.length != n) return false;
  for (let i: u32 = 0; i < n; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>s.charCodeAt(<i32>i)) return false;
  }
  return true;
}

// optionsAre reports whether the options are exactly s (the host sends
// the same options as the same bytes, ABI.md §3).
export function optionsAre(s: string): bool {
  return bytesEqual(optionsPtr, optionsLen, s);
}

// optionString finds the string option key in the options JSON and returns
// its value's offset in the options (its length in optionValueLen), or -1.
// Option values from the host are compact JSON: a string value has no
// escapes unless the listener wrote quotes or backslashes.
export let optionValueLen: u32 = 0;
export function optionString(key: string): i32 {
  const n = optionsLen;
  const k = <u32>key.length;
  for (let i: u32 = 0; i + k + 3 < n; i++) {
    if (load<u8>(optionsPtr + <usize>i) != 0x22) continue;
    if (!bytesEqual(optionsPtr + <usize>i + 1, k, key)) continue;
    let j = i + 1 + k;
    if (load<u8>(optionsPtr + <usize>j) != 0x22 || load<u8>(optionsPtr + <usize>j + 1) != 0x3a) continue;
    j += 2;
    if (load<u8>(optionsPtr + <usize>j) != 0x22) return -1;
    const start = j + 1;
    let e = start;
    while (e < n && load<u8>(optionsPtr + <usize>e) != 0x22) {
      if (load<u8>(optionsPtr + <usize>e) == 0x5c) e++;
      e++;
    }
    optionValueLen = e - start;
    return <i32>start;
  }
  return -1;
}

// ---- framing results -----------------------------------------------------

// frameError records why framing failed (fc_error) and returns code; add
// details with frameMessage() before returning.
export function frameError(code: i32, msg: string): i32 {
  frameMsg.reset();
  frameMsg.ascii(msg);
  return code;
}

// frameMessage is the buffer of the last framing error, to append details.
export function frameMessage(): Buf {
  return frameMsg;
}

// ---- output (ABI.md §4) --------------------------------------------------

const OUT_MAGIC: u32 = 0x31524346; // "FCR1"

const out = new Buf();
const device = new Buf();
const ack = new Buf();
const reject = new Buf();
const message = new Buf();
const state = new Buf();
const records = new Buf();
let status: i32 = 0;
let flags: u32 = 0;
let nRecords: u32 = 0;

// begin starts a new output; call it first in fc_decode.
export function begin(): void {
  device.reset();
  ack.reset();
  reject.reset();
  message.reset();
  state.reset();
  records.reset();
  status = 0;
  flags = 0;
  nRecords = 0;
  inRecord = false;
}

// fail refuses the frame with code and a message (append details with
// messageBuf()); finish() still returns the output.
export function fail(code: i32, msg: string): void {
  status = code;
  message.reset();
  message.ascii(msg);
}

// failed reports whether fail was called for this output.
@inline export function failed(): bool {
  return status != 0;
}

export function messageBuf(): Buf {
  return message;
}

// deviceBuf is the device id section (a login): write the id into it.
export function deviceBuf(): Buf {
  return device;
}

// ackBuf is the ack section: the bytes written once the frame is durable.
export function ackBuf(): Buf {
  return ack;
}

// rejectBuf is the reject section: written to the device when the frame is
// refused.
export function rejectBuf(): Buf {
  return reject;
}

// stateBuf is the new state blob; call replaceState() to make it replace
// the connection's state (an empty buffer empties it).
export function stateBuf(): Buf {
  return state;
}

export function replaceState(): void {
  flags |= 2;
}

// closeAfterAck closes the connection once the ack is written.
export function closeAfterAck(): void {
  flags |= 1;
}

// finish writes the output and returns fc_decode's result.
export function finish(): i64 {
  if (inRecord) endRecord();
  out.reset();
  let nrec = nRecords;
  let dl = device.len, al = ack.len, sl = state.len, rl = records.len;
  let fl = flags;
  if (status != 0) {
    nrec = 0;
    dl = 0;
    al = 0;
    sl = 0;
    rl = 0;
    fl = 0;
  }
  out.ensure(48 + dl + al + reject.len + message.len + sl + rl);
  out.u32le(OUT_MAGIC);
  out.u32le(<u32>status);
  out.u32le(fl);
  out.u32le(nrec);
  out.u32le(dl);
  out.u32le(al);
  out.u32le(reject.len);
  out.u32le(message.len);
  out.u32le(sl);
  out.u32le(rl);
  out.i64le(0);
  out.bytes(device.ptr, dl);
  out.bytes(ack.ptr, al);
  out.bytes(reject.ptr, reject.len);
  out.bytes(message.ptr, message.len);
  out.bytes(state.ptr, sl);
  out.bytes(records.ptr, rl);
  return ptrLen(out.ptr, out.len);
}

// ---- records -------------------------------------------------------------

const values = new StaticArray<f64>(16);
let mask: u32 = 0;
let valid: u8 = 0;
let stamp: u8 = 0;
let inRecord = false;
const attrs = new Buf();
const attrOff = new StaticArray<u32>(1024);
const attrLen = new StaticArray<u32>(1024);
let nAttrSlots: u32 = 0;
let nAttrs: u32 = 0;
const dtcs = new Buf();
let nDTCs: u32 = 0;
const obd = new Buf();
let nOBD: u32 = 0;

// beginRecord starts a record (ending the previous one).
export function beginRecord(): void {
  if (inRecord) endRecord();
  inRecord = true;
  mask = 0;
  valid = VALID_UNKNOWN;
  stamp = STAMP_MS;
  attrs.reset();
  nAttrSlots = 0;
  nAttrs = 0;
  dtcs.reset();
  nDTCs = 0;
  obd.reset();
  nOBD = 0;
}

// setTs sets the device time, Unix ms.
export function setTs(ms: i64): void {
  mask |= 1;
  unchecked((values[0] = reinterpret<f64>(ms)));
}

// setField sets canonical field bit (F_LAT … F_THROTTLE).
export function setField(bit: i32, v: f64): void {
  mask |= 1 << bit;
  unchecked((values[bit] = v));
}

// clearField makes a field absent again.
export function clearField(bit: i32): void {
  mask &= ~(1 << bit);
}

export function hasField(bit: i32): bool {
  return (mask & (1 << bit)) != 0;
}

export function setValid(v: u8): void {
  valid = v;
}

export function setStamp(v: u8): void {
  stamp = v;
}

// attr starts attr name of kind, replacing an earlier one of that name
// (each name once per record), and leaves attrs positioned for its value.
function attr(kind: u32, name: string): void {
  const n = <u32>name.length;
  for (let i: u32 = 0; i < nAttrSlots; i++) {
    const o = unchecked(attrOff[i]);
    if (unchecked(attrLen[i]) != 0 && <u32>attrs.at(o + 1) == n && bytesEqual(attrs.ptr + <usize>o + 2, n, name)) {
      unchecked((attrLen[i] = 0)); // replaced: dropped at endRecord
      nAttrs--;
      break;
    }
  }
  unchecked((attrOff[nAttrSlots] = attrs.len));
  attrs.u8(kind);
  attrs.u8(n);
  attrs.ascii(name);
}

@inline function attrDone(): void {
  const o = unchecked(attrOff[nAttrSlots]);
  unchecked((attrLen[nAttrSlots] = attrs.len - o));
  nAttrSlots++;
  nAttrs++;
}

export function attrF64(name: string, v: f64): void {
  attr(1, name);
  attrs.f64le(v);
  attrDone();
}

export function attrI64(name: string, v: i64): void {
  attr(2, name);
  attrs.i64le(v);
  attrDone();
}

export function attrBool(name: string, v: bool): void {
  attr(3, name);
  attrs.u8(v ? 1 : 0);
  attrDone();
}

// attrString sets a string attr to the n UTF-8 bytes at p.
export function attrBytes(name: string, p: usize, n: u32): void {
  attr(4, name);
  attrs.u16le(n);
  attrs.bytes(p, n);
  attrDone();
}

// attrText sets a string attr to the ASCII string s.
export function attrText(name: string, s: string): void {
  attr(4, name);
  attrs.u16le(<u32>s.length);
  attrs.ascii(s);
  attrDone();
}

// attrHex sets a string attr to the n bytes at p in lower-case hex.
export function attrHex(name: string, p: usize, n: u32): void {
  attr(4, name);
  attrs.u16le(2 * n);
  attrs.hex(p, n);
  attrDone();
}

// dtc adds a diagnostic trouble code (printable ASCII, 1–16 bytes).
export function dtc(p: usize, n: u32): void {
  dtcs.u8(n);
  dtcs.bytes(p, n);
  nDTCs++;
}

// obdRaw adds a raw OBD-II item: the PID's response bytes.
export function obdRaw(pid: u32, p: usize, n: u32): void {
  obd.u8(1);
  obd.u8(pid);
  obd.u8(n);
  obd.bytes(p, n);
  nOBD++;
}

// obdScaled adds an OBD-II item already in the PID's unit.
export function obdScaled(pid: u32, v: f64): void {
  obd.u8(2);
  obd.u8(pid);
  obd.f64le(v);
  nOBD++;
}

// endRecord appends the record (finish() ends an open one).
export function endRecord(): void {
  if (!inRecord) return;
  inRecord = false;
  const start = records.len;
  records.u32le(0); // rec_len, patched below
  records.u32le(mask);
  records.u8(valid);
  records.u8(stamp);
  records.u16le(nAttrs);
  records.u16le(nDTCs);
  records.u16le(nOBD);
  for (let b = 0; b < 16; b++) {
    if ((mask & (1 << b)) != 0) records.f64le(unchecked(values[b]));
  }
  for (let i: u32 = 0; i < nAttrSlots; i++) {
    const l = unchecked(attrLen[i]);
    if (l != 0) records.bytes(attrs.ptr + <usize>unchecked(attrOff[i]), l);
  }
  records.bytes(dtcs.ptr, dtcs.len);
  records.bytes(obd.ptr, obd.len);
  store<u32>(records.ptr + <usize>start, records.len - start);
  nRecords++;
}
