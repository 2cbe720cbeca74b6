// gt06_as: the Concox GT06 protocol (protocols/gt06) as a WASM decoder in
// AssemblyScript, on the SDK in protocols/wasm/sdk-as. It ports the framing,
// the CRC-ITU check, the login (IMEI, declared time zone, option
// device_time), the keep-alive, the GPS / GPS+LBS / GPS+LBS+status location
// packets (0x10 0x11 0x12 0x1E 0x22 0x26 0x2D 0x31), the status packet 0x13
// and the heartbeat 0x23, for listeners without the model option. Every
// other packet, and the model-specific variants, are refused as
// `unsupported` with a message starting "not ported": the native decoder
// remains the reference for those (README.md).

import {
  MALFORMED, CHECKSUM, TOO_LARGE, NO_DEVICE, UNSUPPORTED,
  F_LAT, F_LON, F_SPEED, F_HEADING, F_SATS, F_ODOMETER, F_VOLTAGE,
  VALID_FALSE, VALID_TRUE,
  be16, be24, be32, bytesEqual, metaOf, readInput, frameError, frameMessage,
  begin, fail, failed, finish, messageBuf, deviceBuf, ackBuf, stateBuf, replaceState,
  beginRecord, setTs, setField, setValid, attrF64, attrI64, attrBool, attrText, attrHex,
  dataPtr, dataLen, maxFrame, recvMs, statePtr, stateLen, optionString, optionValueLen, optionsPtr,
} from "../../../sdk-as/assembly/index";

export { fc_abi, fc_alloc, fc_error } from "../../../sdk-as/assembly/index";

const META = `{"name":"gt06_as","version":"1.0.0","abi":1,` +
  `"description":"Concox GT06 (AssemblyScript port of protocols/gt06): login, keep-alive, GPS/LBS/status locations, status, heartbeat",` +
  `"transports":["tcp"],"default_port":5023,"max_frame":0,"state_version":1,"state_max":18,` +
  `"options":[` +
  `{"name":"device_time","type":"enum","values":["declared","utc"],"default":"declared","help":"declared: device times are local to the time zone the login declares; utc: ignore it"},` +
  `{"name":"model","type":"string","default":"","help":"the device model; the model-specific layouts are not ported (their packets are refused as unsupported)"}],` +
  `"tests":[` +
  `{"name":"bad start","frames":[{"hex":"7800","want":{"error":"malformed"}}]}]}`;

const meta = String.UTF8.encode(META);

export function fc_meta(): i64 {
  return metaOf(meta);
}

const START_SHORT: u32 = 0x78;
const START_LONG: u32 = 0x79;
const MIN_LENGTH: u32 = 5;
const PING_LEN: u32 = 6;

// frameLen is the native frameLen: the frame's length, 0 for more, or an
// error code (the message in frameMessage()).
function frameLen(p: usize, n: u32, max: u32): i32 {
  if (n == 0) return 0;
  const b0 = <u32>load<u8>(p);
  if (b0 != START_SHORT && b0 != START_LONG) return frameError(MALFORMED, "start byte is not 0x78 or 0x79");
  if (n < 2) return 0;
  if (<u32>load<u8>(p + 1) != b0) return frameError(MALFORMED, "start bits are not 0x7878 or 0x7979");
  let length: u32, total: u32;
  if (b0 == START_SHORT) {
    if (n < 3) return 0;
    length = <u32>load<u8>(p + 2);
    total = 5 + length;
  } else {
    if (n < 4) return 0;
    length = be16(p + 2);
    total = 6 + length;
  }
  if (length == 1 && b0 == START_SHORT) {
    if (n < PING_LEN) return 0;
    if (load<u8>(p + 4) != 0x0d || load<u8>(p + 5) != 0x0a) return frameError(MALFORMED, "length 1 without stop bits");
    return <i32>PING_LEN;
  }
  if (length < MIN_LENGTH) return frameError(MALFORMED, "length below the minimum 5");
  if (max > 0 && total > max) {
    frameError(TOO_LARGE, "packet of ");
    frameMessage().dec(total);
    frameMessage().ascii(" bytes exceeds the cap");
    return TOO_LARGE;
  }
  if (n < total) return 0;
  if (load<u8>(p + <usize>total - 2) != 0x0d || load<u8>(p + <usize>total - 1) != 0x0a) {
    return frameError(MALFORMED, "stop bits are not 0x0d0a");
  }
  return <i32>total;
}

export function fc_frame(ptr: i32, len: i32): i32 {
  if (!readInput(ptr, len)) return frameError(MALFORMED, "bad input");
  return frameLen(dataPtr, dataLen, maxFrame);
}

// crcITU is CRC-16/X-25 over n bytes at p.
const crcTable = new StaticArray<u16>(256);
for (let i: u32 = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x8408 : c >> 1;
  crcTable[i] = <u16>c;
}

function crcITU(p: usize, n: u32): u32 {
  let c: u32 = 0xffff;
  for (let i: u32 = 0; i < n; i++) {
    c = (c >> 8) ^ <u32>unchecked(crcTable[(c ^ <u32>load<u8>(p + <usize>i)) & 0xff]);
  }
  return ~c & 0xffff;
}

// response writes the protocol's response packet into the ack.
function response(long: bool, proto: u32, serial: u32): void {
  const a = ackBuf();
  a.reset();
  const n: u32 = 5;
  if (long) {
    a.u8(START_LONG);
    a.u8(START_LONG);
    a.u16be(n);
  } else {
    a.u8(START_SHORT);
    a.u8(START_SHORT);
    a.u8(n);
  }
  a.u8(proto);
  a.u16be(serial);
  a.u16be(crcITU(a.ptr + 2, a.len - 2));
  a.u8(0x0d);
  a.u8(0x0a);
}

// ---- the connection's state: tz minutes (i16 LE), then the IMEI ---------

let tzMin: i32 = 0;
let imeiPtr: usize = 0;
let imeiLen: u32 = 0;

function loadState(): void {
  tzMin = 0;
  imeiLen = 0;
  if (stateLen >= 2) {
    tzMin = <i32>load<i16>(statePtr);
    imeiPtr = statePtr + 2;
    imeiLen = stateLen - 2;
  }
}

// ---- content reader (the native reader: a short read sets short) --------

let cp: usize = 0; // content start
let cn: u32 = 0; // content length
let off: u32 = 0;
let short = false;

@inline function left(): u32 {
  return off <= cn ? cn - off : 0;
}

@inline function need(n: u32): bool {
  if (short || left() < n) {
    short = true;
    return false;
  }
  return true;
}

function u8r(): u32 {
  if (!need(1)) return 0;
  const v = <u32>load<u8>(cp + <usize>off);
  off += 1;
  return v;
}

function u16r(): u32 {
  if (!need(2)) return 0;
  const v = be16(cp + <usize>off);
  off += 2;
  return v;
}

function u24r(): u32 {
  if (!need(3)) return 0;
  const v = be24(cp + <usize>off);
  off += 3;
  return v;
}

function u32r(): u32 {
  if (!need(4)) return 0;
  const v = be32(cp + <usize>off);
  off += 4;
  return v;
}

// ---- dates ---------------------------------------------------------------

// daysFromCivil is days since 1970-01-01 of y-m-d (proleptic Gregorian);
// out-of-range days roll over as Go's time.Date does.
function daysFromCivil(y: i64, m: i64, d: i64): i64 {
  y -= m <= 2 ? 1 : 0;
  const era = (y >= 0 ? y : y - 399) / 400;
  const yoe = y - era * 400;
  const mp = (m + 9) % 12;
  const doy = (153 * mp + 2) / 5;
  const doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468 + d - 1;
}

let civY: i64 = 0, civM: i64 = 0, civD: i64 = 0;

// civilFromDays sets civY, civM, civD from days since 1970-01-01.
function civilFromDays(z: i64): void {
  z += 719468;
  const era = (z >= 0 ? z : z - 146096) / 146097;
  const doe = z - era * 146097;
  const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const mp = (5 * doy + 2) / 153;
  civD = doy - (153 * mp + 2) / 5 + 1;
  civM = mp < 10 ? mp + 3 : mp - 9;
  civY = yoe + era * 400 + (civM <= 2 ? 1 : 0);
}

function isDate(p: usize): bool {
  let z: u32 = 0;
  for (let i = 0; i < 6; i++) z |= <u32>load<u8>(p + <usize>i);
  if (z == 0) return true;
  const mo = <u32>load<u8>(p + 1), dd = <u32>load<u8>(p + 2);
  return mo >= 1 && mo <= 12 && dd >= 1 && dd <= 31 && load<u8>(p + 3) <= 23 && load<u8>(p + 4) <= 59 && load<u8>(p + 5) <= 59;
}

function isBCD(p: usize, n: u32): bool {
  for (let i: u32 = 0; i < n; i++) {
    const b = <u32>load<u8>(p + <usize>i);
    if (b >> 4 > 9 || (b & 15) > 9) return false;
  }
  return true;
}

// ---- decoding --------------------------------------------------------------

let proto: u32 = 0;
let long = false;
let serial: u32 = 0;
let noAck = false;
let customAck = false; // the ack is already written

function notPorted(what: string): void {
  fail(UNSUPPORTED, "not ported: ");
  messageBuf().ascii(what);
  messageBuf().ascii(" 0x");
  messageBuf().hex(cp - 1, 1); // the protocol number
}

function unsupported(what: string): void {
  fail(UNSUPPORTED, what);
}

// gps reads the 18-byte GPS block into a new record.
function gps(): bool {
  if (!need(6)) return false;
  const d = cp + <usize>off;
  if (!isDate(d)) {
    unsupported("GPS date is not a date: a layout variant this decoder does not know");
    return false;
  }
  let zero = true;
  for (let i = 0; i < 6; i++) if (load<u8>(d + <usize>i) != 0) zero = false;
  off += 6;
  beginRecord();
  if (!zero) {
    const days = daysFromCivil(2000 + <i64>load<u8>(d), <i64>load<u8>(d + 1), <i64>load<u8>(d + 2));
    const secs = days * 86400 + <i64>load<u8>(d + 3) * 3600 + <i64>load<u8>(d + 4) * 60 + <i64>load<u8>(d + 5);
    setTs((secs - <i64>tzMin * 60) * 1000);
  }
  const info = u8r();
  setField(F_SATS, <f64>(info & 0x0f));
  let lat = <f64>u32r() / 1800000;
  let lon = <f64>u32r() / 1800000;
  const speed = u8r();
  const fl = u16r();
  if (short) return false;
  setField(F_SPEED, <f64>speed);
  if ((fl & 0x0400) == 0) lat = -lat;
  if ((fl & 0x0800) != 0) lon = -lon;
  if (Math.abs(lat) > 90 || Math.abs(lon) > 180) {
    unsupported("position out of range: a layout variant this decoder does not know");
    return false;
  }
  setField(F_LAT, lat);
  setField(F_LON, lon);
  setField(F_HEADING, <f64>(fl & 0x03ff));
  setValid((fl & 0x1000) != 0 ? VALID_TRUE : VALID_FALSE);
  if ((fl & 0x4000) != 0) attrBool("ignition", (fl & 0x8000) != 0);
  if (zero) {
    attrBool("time_missing", true);
    setValid(VALID_FALSE);
  }
  return true;
}

const LBS_SHORT = 1; // MCC 2, MNC 1 (2 when MCC bit 15), LAC 2, cell id 3
const LBS_WIDE = 2; // MCC 2, MNC 2, LAC 2, cell id 4 (0x11)
const LBS_4G = 3; // MCC 2, MNC 1 (2 when MCC bit 15), LAC 4, cell id 8
const LBS_CID4 = 4; // MCC 2, MNC 1 (2 when MCC bit 15), LAC 2, cell id 4

function allZero(p: usize, n: u32): bool {
  for (let i: u32 = 0; i < n; i++) if (load<u8>(p + <usize>i) != 0) return false;
  return true;
}

function lbs(kind: i32, hasLen: bool): void {
  const start = off;
  let n: u32 = 0;
  if (hasLen) {
    n = u8r();
    if (short) return;
    if (n == 0) {
      const p = cp + <usize>off;
      if (left() >= 45 + 5 && allZero(p + 9, 36)) off += 45;
      else if (left() >= 8 + 5 && allZero(p, 8)) off += 8;
      return;
    }
  }
  const mcc = u16r();
  let mnc: u32, lac: u32, cid: u64;
  if (kind == LBS_WIDE) {
    mnc = u16r();
    lac = u16r();
    cid = <u64>u32r();
  } else if (kind == LBS_4G) {
    mnc = (mcc & 0x8000) != 0 ? u16r() : u8r();
    lac = u32r();
    cid = (<u64>u32r() << 32) | <u64>u32r();
  } else if (kind == LBS_CID4) {
    mnc = (mcc & 0x8000) != 0 ? u16r() : u8r();
    lac = u16r();
    cid = <u64>u32r();
  } else {
    mnc = (mcc & 0x8000) != 0 ? u16r() : u8r();
    lac = u16r();
    cid = <u64>u24r();
  }
  if (hasLen && n > off - start) {
    const rest = n - (off - start);
    if (!need(rest)) return;
    off += rest;
  }
  if (short) return;
  attrI64("mcc", <i64>(mcc & 0x7fff));
  attrI64("mnc", <i64>mnc);
  attrI64("lac", <i64>lac);
  attrI64("cell_id", <i64>cid);
}

function terminalInfo(v: u32): void {
  if (short) return;
  attrI64("status", <i64>v);
  attrBool("armed", (v & 0x01) != 0);
  attrBool("ignition", (v & 0x02) != 0);
  attrBool("charging", (v & 0x04) != 0);
  attrBool("gps_tracking", (v & 0x40) != 0);
  attrBool("blocked", (v & 0x80) != 0);
  switch ((v >> 3) & 7) {
    case 1: attrText("alarm", "vibration"); break;
    case 2: attrText("alarm", "power_cut"); break;
    case 3: attrText("alarm", "low_battery"); break;
    case 4: attrText("alarm", "sos"); break;
    case 6: attrText("alarm", "geofence"); break;
    case 7: attrText("alarm", "removing"); break;
  }
}

function batteryLevel(level: u32): void {
  if (short) return;
  if (level <= 6) {
    attrI64("voltage_level", <i64>level);
    attrI64("battery_level", <i64>(level * 100 / 6));
  } else if (level <= 100) {
    attrI64("battery_level", <i64>level);
  } else {
    attrI64("voltage_level", <i64>level);
  }
}

// alarmName is the native alarmName for a listener without a model.
function alarmName(v: u32): string {
  switch (v) {
    case 0x01: return "sos";
    case 0x02: return "power_cut";
    case 0x03: case 0x09: return "vibration";
    case 0x04: return "geofence_enter";
    case 0x05: return "geofence_exit";
    case 0x06: return "overspeed";
    case 0x0e: case 0x0f: return "low_battery";
    case 0x11: return "power_off";
    case 0x0c: case 0x13: case 0x25: case 0x32: return "tampering";
    case 0x14: return "door";
    case 0x18: return "removing";
    case 0x19: return "low_battery";
    case 0x1a: case 0x27: case 0x28: return "hard_braking";
    case 0x1b: case 0x2a: case 0x2b: case 0x2e: return "hard_cornering";
    case 0x23: return "fall_down";
    case 0x26: case 0x29: return "hard_acceleration";
    case 0x2c: return "accident";
    case 0x30: return "jamming";
    case 0x33: return "lock";
    case 0x34: return "unlock";
    case 0x53: return "fuel_leak";
    case 0x5b: case 0x5c: return "temperature";
    case 0xc9: return "idle";
  }
  return "";
}

function alarmByte(a: u32): void {
  if (a == 0 || short) return;
  attrI64("alarm_code", <i64>a);
  const name = alarmName(a);
  if (name.length > 0) attrText("alarm", name);
}

function statusBlock(noAlarmExt: bool = false): void {
  terminalInfo(u8r());
  batteryLevel(u8r());
  const g = u8r();
  if (!short) attrI64("gsm_signal", <i64>g);
  const a = u8r();
  if (!noAlarmExt) alarmByte(a);
  else if (a != 0 && !short) attrI64("alarm_code", <i64>a);
  if (left() > 0) attrI64("language", <i64>u8r());
}

function odometerTail(): void {
  if (left() == 4) setField(F_ODOMETER, <f64>u32r() / 1000);
}

function accTail(): void {
  if (left() >= 3) {
    attrBool("ignition", u8r() != 0);
    attrI64("upload_mode", <i64>u8r());
    attrBool("archive", u8r() != 0);
  }
  odometerTail();
}

const TAIL_NONE = 0;
const TAIL_ODO = 1;
const TAIL_ACC = 2;
const TAIL_RFID = 3;
const TAIL_FENCE = 4;

// gpsLBS is the native gpsLBS: a GPS block (or a record without device
// time), a cell, the status block, a tail.
function gpsLBS(hasGPS: bool, lbsKind: i32, lbsLen: bool, status: bool, tail: i32, noAlarmExt: bool = false): void {
  if (hasGPS) {
    if (!gps()) return;
  } else {
    beginRecord();
  }
  if (lbsKind != 0) lbs(lbsKind, lbsLen);
  if (status) statusBlock(noAlarmExt);
  if (!short) {
    if (tail == TAIL_ODO) odometerTail();
    else if (tail == TAIL_ACC) accTail();
    else if (tail == TAIL_RFID) {
      if (left() >= 8) {
        attrHex("driver_id", cp + <usize>off, 8);
        off += 8;
      }
    } else if (tail == TAIL_FENCE) {
      if (left() >= 1) attrI64("geofence", <i64>u8r());
    }
  }
}

// serverRecord starts a record without a device time.
function serverRecord(): void {
  beginRecord();
}

function basic(): void {
  const c = cp;
  const n = cn;
  switch (proto) {
    case 0x10: case 0x11: case 0x12: case 0x16: case 0x17: case 0x19: case 0x1e: case 0x22: case 0x26: case 0x27:
    case 0x2d: case 0x31: case 0x32: case 0xa0: case 0xa4: case 0xa5: case 0xa7: {
      if (proto == 0x12 && ((n >= 8 + 18 && !isDate(c) && isBCD(c, 8) && isDate(c + 8)) || n == 0x24 - 5 || n == 0x2b - 5)) {
        notPorted("model variant of");
        return;
      }
      if (proto == 0x22 && ((n >= 21 && !isDate(c) && isBCD(c + 1, 8) && isDate(c + 9) && isDate(c + 15)) || n == 0x2f - 5)) {
        notPorted("model variant of");
        return;
      }
      if (proto == 0x16 && n == 0x24 - 5) {
        gpsLBS(true, LBS_SHORT, false, true, TAIL_NONE, true); // VXT01
        return;
      }
      if (proto == 0x16 && n == 0x26 - 5) {
        gpsLBS(true, LBS_CID4, true, true, TAIL_NONE); // Seeworld
        return;
      }
      if (proto == 0x19 && n >= 0x17 - 5) {
        unsupported("0x19 multi-cell report (Space10X): layout not documented");
        return;
      }
      if (n == 0) return; // an empty report: nothing to store, ack it
      switch (proto) {
        case 0x10: gpsLBS(true, 0, false, false, TAIL_NONE); break;
        case 0x11: gpsLBS(true, LBS_WIDE, false, false, TAIL_NONE); break;
        case 0x12: gpsLBS(true, LBS_SHORT, false, false, TAIL_ODO); break;
        case 0x16: case 0x26: case 0x32: gpsLBS(true, LBS_SHORT, true, true, TAIL_NONE); break;
        case 0x17: gpsLBS(true, LBS_SHORT, false, false, TAIL_RFID); break;
        case 0x19: gpsLBS(false, LBS_SHORT, false, true, TAIL_NONE); break;
        case 0x1e: case 0x31: gpsLBS(true, LBS_SHORT, false, false, TAIL_NONE); break;
        case 0x22: case 0x2d: case 0xa0: gpsLBS(true, proto == 0xa0 ? LBS_4G : LBS_SHORT, false, false, TAIL_ACC); break;
        case 0x27: gpsLBS(true, LBS_SHORT, true, true, TAIL_FENCE); break;
        case 0xa4: gpsLBS(true, LBS_4G, true, true, TAIL_FENCE); break;
        case 0xa5: gpsLBS(false, LBS_4G, false, true, TAIL_NONE); break;
        case 0xa7: gpsLBS(false, LBS_4G, false, false, TAIL_NONE); break;
      }
      return;
    }
    case 0x13: {
      if (n != 5 && (n == 0x13 - 5 || n == 0x15 - 5)) {
        notPorted("long status");
        return;
      }
      serverRecord();
      if (n == 5) statusBlock();
      else terminalInfo(u8r());
      return;
    }
    case 0x94: {
      serverRecord();
      setField(F_VOLTAGE, <f64><i16>u16r() * 0.01);
      noAck = true;
      return;
    }
    case 0x8a: {
      // The time request: the answer carries the receive time (UTC).
      const secs = recvMs >= 0 ? recvMs / 1000 : (recvMs - 999) / 1000;
      const days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
      const sod = secs - days * 86400;
      civilFromDays(days);
      const a = ackBuf();
      a.reset();
      a.u8(START_SHORT);
      a.u8(START_SHORT);
      a.u8(5 + 6);
      a.u8(0x8a);
      a.u8(<u32>(civY - 2000));
      a.u8(<u32>civM);
      a.u8(<u32>civD);
      a.u8(<u32>(sod / 3600));
      a.u8(<u32>((sod / 60) % 60));
      a.u8(<u32>(sod % 60));
      a.u16be(serial);
      a.u16be(crcITU(a.ptr + 2, a.len - 2));
      a.u8(0x0d);
      a.u8(0x0a);
      customAck = true;
      return;
    }
    case 0x23: {
      serverRecord();
      terminalInfo(u8r());
      if (left() >= 2) {
        const v = u16r();
        // battery is an f64 attr: the native float64(v)*0.01.
        attrF64("battery", <f64>v * 0.01);
      }
      if (left() >= 1) attrI64("gsm_signal", <i64>u8r());
      return;
    }
  }
  notPorted("protocol number");
}

function login(): void {
  if (cn < 8) {
    fail(MALFORMED, "login: fewer than 8 content bytes");
    return;
  }
  if (!isBCD(cp, 8)) {
    fail(MALFORMED, "login: terminal id is not BCD");
    return;
  }
  const st = stateBuf();
  st.reset();
  let tz: i32 = tzMin;
  if (cn >= 12) {
    const ext = be16(cp + 10);
    const hhmm = <i32>(ext >> 4);
    let m = (hhmm / 100) * 60 + hhmm % 100;
    if ((ext & 0x08) != 0) m = -m;
    if (m > -15 * 60 && m < 15 * 60 && !utcClock()) tz = m;
  }
  st.u16le(<u32>tz & 0xffff);
  const dev = deviceBuf();
  dev.reset();
  for (let i: u32 = 0; i < 8; i++) {
    const b = <u32>load<u8>(cp + <usize>i);
    if (i == 0 && (b >> 4) == 0) {
      dev.u8(0x30 + (b & 15)); // 15-digit IMEI padded with a leading zero
      continue;
    }
    dev.u8(0x30 + (b >> 4));
    dev.u8(0x30 + (b & 15));
  }
  st.bytes(dev.ptr, dev.len);
  replaceState();
  response(false, 0x01, serial);
}

function utcClock(): bool {
  const i = optionString("device_time");
  return i >= 0 && bytesEqual(optionsPtr + <usize>i, optionValueLen, "utc");
}

function modelSet(): bool {
  const i = optionString("model");
  return i >= 0 && optionValueLen > 0;
}

export function fc_decode(ptr: i32, len: i32): i64 {
  begin();
  if (!readInput(ptr, len)) {
    fail(MALFORMED, "bad input");
    return finish();
  }
  loadState();
  const p = dataPtr;
  const n = dataLen;
  if (n == PING_LEN && load<u8>(p) == 0x78 && load<u8>(p + 1) == 0x78 && load<u8>(p + 2) == 1 && load<u8>(p + 4) == 0x0d && load<u8>(p + 5) == 0x0a) {
    return finish(); // the keep-alive: no signal, no response
  }
  const fr = frameLen(p, n, maxFrame);
  if (fr < 0) {
    fail(fr, "");
    const m = frameMessage();
    messageBuf().bytes(m.ptr, m.len);
    return finish();
  }
  if (fr == 0 || <u32>fr != n) {
    fail(MALFORMED, fr == 0 ? "truncated packet" : "trailing bytes after the packet");
    return finish();
  }
  long = load<u8>(p) == START_LONG;
  const hl: u32 = long ? 4 : 3;
  const want = be16(p + <usize>n - 4);
  if (crcITU(p + 2, n - 6) != want) {
    fail(CHECKSUM, "CRC-ITU mismatch");
    return finish();
  }
  proto = <u32>load<u8>(p + <usize>hl);
  cp = p + <usize>hl + 1;
  cn = n - hl - 1 - 6;
  serial = be16(p + <usize>n - 6);
  off = 0;
  short = false;
  noAck = false;
  customAck = false;
  if (proto == 0x01 && !long) {
    login();
    return finish();
  }
  if (imeiLen == 0) {
    fail(NO_DEVICE, "no login packet yet");
    return finish();
  }
  if (long) {
    notPorted("0x7979 packet");
    return finish();
  }
  if (modelSet()) {
    notPorted("listener option model with packet");
    return finish();
  }
  basic();
  if (!failed() && short) fail(UNSUPPORTED, "content ends early (a model variant of this packet?)");
  if (!failed() && !noAck && !customAck) response(long, proto, serial);
  return finish();
}
