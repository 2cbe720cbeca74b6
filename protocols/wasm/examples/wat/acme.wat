;; acme_wat: the ACME AT-1 protocol (protocols/acme, the native worked
;; example) as a WebAssembly decoder written by hand against the decoder
;; ABI v1 (protocols/wasm/ABI.md). It needs no toolchain but wabt:
;;
;;   wat2wasm acme.wat -o acme_wat.wasm
;;
;; Frames (big-endian): AC 3E · version 1 · type · length u16 · payload ·
;; CRC-16/CCITT-FALSE over version..payload. Types: 01 hello (15 IMEI
;; digits), 02 records (seq u16, count u8, count × 22-byte record),
;; 03 heartbeat. Acks: the same frame shape with bit 7 of the type set
;; (the records ack carries the seq).
;;
;; Memory (2 pages to start):
;;   256..1023    error messages and constants
;;   1024..4095   fc_meta JSON
;;   4096..4607   the CRC-16 table
;;   16384..65535 the output of fc_decode (48-byte header + sections)
;;   65536..      the input buffer fc_alloc hands the host (grown on demand)
;;
;; Per-connection state is the 15-byte IMEI of the hello (state_max 15):
;; the module keeps nothing of a connection between calls.
(module
  (memory (export "memory") 2)

  ;; fc_frame's last error, for fc_error; also the message of a refusal.
  (global $msg_ptr (mut i32) (i32.const 0))
  (global $msg_len (mut i32) (i32.const 0))

  (data (i32.const 256) "start bytes are not AC 3E")                      ;; 25
  (data (i32.const 288) "version is not 1")                               ;; 16
  (data (i32.const 320) "length field exceeds max_frame")                 ;; 30
  (data (i32.const 352) "CRC-16 mismatch")                                ;; 15
  (data (i32.const 384) "not exactly one frame")                          ;; 21
  (data (i32.const 416) "hello IMEI is not 15 digits")                    ;; 27
  (data (i32.const 448) "no hello before this message")                   ;; 28
  (data (i32.const 480) "record count does not match the payload length") ;; 46
  (data (i32.const 544) "unknown message type")                           ;; 20
  (data (i32.const 576) "ignition")                                       ;; 8
  (data (i32.const 600) "{\"ack\":false}")                                ;; 13
  (data (i32.const 4096) "\00\00\21\10\42\20\63\30\84\40\a5\50\c6\60\e7\70\08\81\29\91\4a\a1\6b\b1\8c\c1\ad\d1\ce\e1\ef\f1\31\12\10\02\73\32\52\22\b5\52\94\42\f7\72\d6\62\39\93\18\83\7b\b3\5a\a3\bd\d3\9c\c3\ff\f3\de\e3\62\24\43\34\20\04\01\14\e6\64\c7\74\a4\44\85\54\6a\a5\4b\b5\28\85\09\95\ee\e5\cf\f5\ac\c5\8d\d5\53\36\72\26\11\16\30\06\d7\76\f6\66\95\56\b4\46\5b\b7\7a\a7\19\97\38\87\df\f7\fe\e7\9d\d7\bc\c7\c4\48\e5\58\86\68\a7\78\40\08\61\18\02\28\23\38\cc\c9\ed\d9\8e\e9\af\f9\48\89\69\99\0a\a9\2b\b9\f5\5a\d4\4a\b7\7a\96\6a\71\1a\50\0a\33\3a\12\2a\fd\db\dc\cb\bf\fb\9e\eb\79\9b\58\8b\3b\bb\1a\ab\a6\6c\87\7c\e4\4c\c5\5c\22\2c\03\3c\60\0c\41\1c\ae\ed\8f\fd\ec\cd\cd\dd\2a\ad\0b\bd\68\8d\49\9d\97\7e\b6\6e\d5\5e\f4\4e\13\3e\32\2e\51\1e\70\0e\9f\ff\be\ef\dd\df\fc\cf\1b\bf\3a\af\59\9f\78\8f\88\91\a9\81\ca\b1\eb\a1\0c\d1\2d\c1\4e\f1\6f\e1\80\10\a1\00\c2\30\e3\20\04\50\25\40\46\70\67\60\b9\83\98\93\fb\a3\da\b3\3d\c3\1c\d3\7f\e3\5e\f3\b1\02\90\12\f3\22\d2\32\35\42\14\52\77\62\56\72\ea\b5\cb\a5\a8\95\89\85\6e\f5\4f\e5\2c\d5\0d\c5\e2\34\c3\24\a0\14\81\04\66\74\47\64\24\54\05\44\db\a7\fa\b7\99\87\b8\97\5f\e7\7e\f7\1d\c7\3c\d7\d3\26\f2\36\91\06\b0\16\57\66\76\76\15\46\34\56\4c\d9\6d\c9\0e\f9\2f\e9\c8\99\e9\89\8a\b9\ab\a9\44\58\65\48\06\78\27\68\c0\18\e1\08\82\38\a3\28\7d\cb\5c\db\3f\eb\1e\fb\f9\8b\d8\9b\bb\ab\9a\bb\75\4a\54\5a\37\6a\16\7a\f1\0a\d0\1a\b3\2a\92\3a\2e\fd\0f\ed\6c\dd\4d\cd\aa\bd\8b\ad\e8\9d\c9\8d\26\7c\07\6c\64\5c\45\4c\a2\3c\83\2c\e0\1c\c1\0c\1f\ef\3e\ff\5d\cf\7c\df\9b\af\ba\bf\d9\8f\f8\9f\17\6e\36\7e\55\4e\74\5e\93\2e\b2\3e\d1\0e\f0\1e")
  (data (i32.const 1024) "{\"name\":\"acme_wat\",\"version\":\"1.0.0\",\"abi\":1,\"description\":\"ACME AT-1 in WebAssembly text (the decoder ABI's worked example): binary frames, CRC-16, hello, record batches, heartbeat\",\"transports\":[\"tcp\"],\"default_port\":5201,\"state_version\":1,\"state_max\":15,\"options\":[{\"name\":\"ack\",\"type\":\"bool\",\"default\":true,\"help\":\"answer hellos, batches and heartbeats (false: a listen-only mirror of a port another server acks)\"}],\"tests\":[{\"name\":\"hello, batch, heartbeat, bad CRC\",\"frames\":[{\"hex\":\"ac3e0101000f3335363330373034323434313031332898\",\"want\":{\"device\":\"356307042441013\",\"ack_hex\":\"ac3e01810000fe1e\",\"signals\":[]}},{\"hex\":\"ac3e0102001900020169259a7c1f4e5fb007fe3420002401f403840002ffff6927\",\"want\":{\"ack_hex\":\"ac3e01820002000263c1\",\"signals\":[{\"device_id\":\"356307042441013\",\"ts\":\"2025-11-25T12:01:00Z\",\"lat\":52.523,\"lon\":13.41,\"alt\":36,\"speed\":50,\"heading\":90,\"sats\":0,\"valid\":false,\"voltage\":null,\"attrs\":{\"ignition\":true}}]}},{\"hex\":\"ac3e01030000ab24\",\"want\":{\"ack_hex\":\"ac3e01830000907e\",\"signals\":[]}},{\"hex\":\"ac3e0102001900020169259a7d1f4e5fb007fe3420002401f403840002ffff6927\",\"want\":{\"error\":\"checksum\"}}]},{\"name\":\"records before the hello\",\"frames\":[{\"hex\":\"ac3e0102001900020169259a7c1f4e5fb007fe3420002401f403840002ffff6927\",\"want\":{\"error\":\"no_device\"}}]},{\"name\":\"listen-only: no acks\",\"options\":{\"ack\":\"false\"},\"frames\":[{\"hex\":\"ac3e0101000f3335363330373034323434313031332898\",\"want\":{\"device\":\"356307042441013\",\"ack_hex\":\"\"}}]}]}")

  (func (export "fc_abi") (result i32) (i32.const 1))

  (func (export "fc_meta") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 1444)))

  ;; fc_alloc: the input buffer at 65536, the memory grown to hold size bytes.
  (func (export "fc_alloc") (param $size i32) (result i32)
    (local $need i32)
    (local.set $need
      (i32.shr_u (i32.add (local.get $size) (i32.const 131071)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 65536))

  (func $be16 (param $p i32) (result i32)
    (i32.or (i32.shl (i32.load8_u (local.get $p)) (i32.const 8))
            (i32.load8_u offset=1 (local.get $p))))

  (func $be32 (param $p i32) (result i32)
    (i32.or (i32.shl (call $be16 (local.get $p)) (i32.const 16))
            (call $be16 (i32.add (local.get $p) (i32.const 2)))))

  (func $put_be16 (param $p i32) (param $v i32)
    (i32.store8 (local.get $p) (i32.shr_u (local.get $v) (i32.const 8)))
    (i32.store8 offset=1 (local.get $p) (local.get $v)))

  ;; $fail records a message and returns the error code.
  (func $fail (param $code i32) (param $p i32) (param $l i32) (result i32)
    (global.set $msg_ptr (local.get $p))
    (global.set $msg_len (local.get $l))
    (local.get $code))

  (func $eq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $no
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $no (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, table-driven (the
  ;; table at 4096 holds the 256 u16 steps, little-endian): one loop
  ;; iteration per byte. Loops are what a guest pays for under the host's
  ;; time budget (wazero checks for termination at every loop header), so
  ;; a table beats the 8-step bit loop by far.
  (func $crc16 (param $p i32) (param $n i32) (result i32)
    (local $c i32) (local $end i32)
    (local.set $c (i32.const 0xFFFF))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c
          (i32.and
            (i32.xor
              (i32.shl (local.get $c) (i32.const 8))
              (i32.load16_u offset=4096
                (i32.shl
                  (i32.and (i32.xor (i32.shr_u (local.get $c) (i32.const 8)) (i32.load8_u (local.get $p))) (i32.const 0xFF))
                  (i32.const 1))))
            (i32.const 0xFFFF)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $bytes)))
    (local.get $c))

  ;; $frame_len: 0 = need more, n = a frame of n bytes, < 0 = error code.
  (func $frame_len (param $d i32) (param $n i32) (param $max i32) (result i32)
    (local $total i32)
    (if (i32.ge_u (local.get $n) (i32.const 1))
      (then (if (i32.ne (i32.load8_u (local.get $d)) (i32.const 0xAC))
        (then (return (call $fail (i32.const -1) (i32.const 256) (i32.const 25)))))))
    (if (i32.ge_u (local.get $n) (i32.const 2))
      (then (if (i32.ne (i32.load8_u offset=1 (local.get $d)) (i32.const 0x3E))
        (then (return (call $fail (i32.const -1) (i32.const 256) (i32.const 25)))))))
    (if (i32.ge_u (local.get $n) (i32.const 3))
      (then (if (i32.ne (i32.load8_u offset=2 (local.get $d)) (i32.const 1))
        (then (return (call $fail (i32.const -1) (i32.const 288) (i32.const 16)))))))
    (if (i32.lt_u (local.get $n) (i32.const 6)) (then (return (i32.const 0))))
    (local.set $total (i32.add (call $be16 (i32.add (local.get $d) (i32.const 4))) (i32.const 8)))
    (if (i32.gt_u (local.get $total) (local.get $max))
      (then (return (call $fail (i32.const -3) (i32.const 320) (i32.const 30)))))
    (if (i32.lt_u (local.get $n) (local.get $total)) (then (return (i32.const 0))))
    (local.get $total))

  ;; The data section of the input at $in: after the header, options, state.
  (func $data (param $in i32) (result i32)
    (i32.add (i32.add (i32.add (local.get $in) (i32.const 32))
                      (i32.load offset=20 (local.get $in)))
             (i32.load offset=24 (local.get $in))))

  (func (export "fc_frame") (param $in i32) (param $len i32) (result i32)
    (call $frame_len (call $data (local.get $in))
                     (i32.load offset=28 (local.get $in))
                     (i32.load offset=16 (local.get $in))))

  (func (export "fc_error") (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (global.get $msg_ptr)) (i64.const 32))
            (i64.extend_i32_u (global.get $msg_len))))

  ;; $finish writes the output header at 16384 (the sections are already
  ;; written after it, in ABI order) and returns ptr<<32|len.
  (func $finish (param $status i32) (param $flags i32) (param $nrec i32)
                (param $dev i32) (param $ack i32) (param $rej i32) (param $msg i32)
                (param $st i32) (param $recs i32) (result i64)
    (i32.store (i32.const 16384) (i32.const 0x31524346)) ;; "FCR1"
    (i32.store offset=4 (i32.const 16384) (local.get $status))
    (i32.store offset=8 (i32.const 16384) (local.get $flags))
    (i32.store offset=12 (i32.const 16384) (local.get $nrec))
    (i32.store offset=16 (i32.const 16384) (local.get $dev))
    (i32.store offset=20 (i32.const 16384) (local.get $ack))
    (i32.store offset=24 (i32.const 16384) (local.get $rej))
    (i32.store offset=28 (i32.const 16384) (local.get $msg))
    (i32.store offset=32 (i32.const 16384) (local.get $st))
    (i32.store offset=36 (i32.const 16384) (local.get $recs))
    (i64.store offset=40 (i32.const 16384) (i64.const 0))
    (i64.or (i64.shl (i64.const 16384) (i64.const 32))
            (i64.extend_i32_u
              (i32.add (i32.const 48)
                (i32.add (i32.add (i32.add (local.get $dev) (local.get $ack)) (i32.add (local.get $rej) (local.get $msg)))
                         (i32.add (local.get $st) (local.get $recs)))))))

  ;; $refuse: an output with a negative status and the recorded message.
  (func $refuse (param $code i32) (result i64)
    (memory.copy (i32.const 16432) (global.get $msg_ptr) (global.get $msg_len))
    (call $finish (local.get $code) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                  (i32.const 0) (global.get $msg_len) (i32.const 0) (i32.const 0)))

  ;; $ack writes an ack frame of type $typ at $w (with the seq when $has)
  ;; and returns its length.
  (func $ack (param $w i32) (param $typ i32) (param $seq i32) (param $has i32) (result i32)
    (local $plen i32)
    (local.set $plen (i32.shl (local.get $has) (i32.const 1)))
    (i32.store8 (local.get $w) (i32.const 0xAC))
    (i32.store8 offset=1 (local.get $w) (i32.const 0x3E))
    (i32.store8 offset=2 (local.get $w) (i32.const 1))
    (i32.store8 offset=3 (local.get $w) (local.get $typ))
    (i32.store8 offset=4 (local.get $w) (i32.const 0))
    (i32.store8 offset=5 (local.get $w) (local.get $plen))
    (call $put_be16 (i32.add (local.get $w) (i32.const 6)) (local.get $seq))
    (call $put_be16 (i32.add (i32.add (local.get $w) (i32.const 6)) (local.get $plen))
      (call $crc16 (i32.add (local.get $w) (i32.const 2)) (i32.add (i32.const 4) (local.get $plen))))
    (i32.add (i32.const 8) (local.get $plen)))

  ;; $record writes the output record of the 22-byte ACME record at $r to
  ;; $w and returns the end: ts, lat, lon, alt, speed, heading, sats and
  ;; voltage (when measured), valid from flags bit 0, attr ignition.
  (func $record (param $w i32) (param $r i32) (result i32)
    (local $mv i32)
    (local.set $mv (call $be16 (i32.add (local.get $r) (i32.const 20))))
    (i32.store (local.get $w) (i32.const 83))            ;; rec_len: 16 + 7·8 + 11
    (i32.store offset=4 (local.get $w) (i32.const 0xFD)) ;; ts lat lon alt speed heading sats
    (if (i32.ne (local.get $mv) (i32.const 0xFFFF))
      (then
        (i32.store (local.get $w) (i32.const 91))
        (i32.store offset=4 (local.get $w) (i32.const 0x10FD)))) ;; + voltage
    (i32.store8 offset=8 (local.get $w)
      (i32.add (i32.const 1) (i32.and (i32.load8_u offset=19 (local.get $r)) (i32.const 1))))
    (i32.store8 offset=9 (local.get $w) (i32.const 0))
    (i32.store16 offset=10 (local.get $w) (i32.const 1)) ;; n_attrs
    (i32.store16 offset=12 (local.get $w) (i32.const 0)) ;; n_dtcs
    (i32.store16 offset=14 (local.get $w) (i32.const 0)) ;; n_obd
    (i64.store offset=16 (local.get $w)
      (i64.mul (i64.extend_i32_u (call $be32 (local.get $r))) (i64.const 1000)))
    (f64.store offset=24 (local.get $w)
      (f64.div (f64.convert_i32_s (call $be32 (i32.add (local.get $r) (i32.const 4)))) (f64.const 1e7)))
    (f64.store offset=32 (local.get $w)
      (f64.div (f64.convert_i32_s (call $be32 (i32.add (local.get $r) (i32.const 8)))) (f64.const 1e7)))
    (f64.store offset=40 (local.get $w)
      (f64.convert_i32_s (i32.extend16_s (call $be16 (i32.add (local.get $r) (i32.const 12))))))
    (f64.store offset=48 (local.get $w)
      (f64.div (f64.convert_i32_u (call $be16 (i32.add (local.get $r) (i32.const 14)))) (f64.const 10)))
    (f64.store offset=56 (local.get $w)
      (f64.div (f64.convert_i32_u (call $be16 (i32.add (local.get $r) (i32.const 16)))) (f64.const 10)))
    (f64.store offset=64 (local.get $w)
      (f64.convert_i32_u (i32.load8_u offset=18 (local.get $r))))
    (local.set $w (i32.add (local.get $w) (i32.const 72)))
    (if (i32.ne (local.get $mv) (i32.const 0xFFFF))
      (then
        (f64.store (local.get $w) (f64.div (f64.convert_i32_u (local.get $mv)) (f64.const 1000)))
        (local.set $w (i32.add (local.get $w) (i32.const 8)))))
    (i32.store8 (local.get $w) (i32.const 3))             ;; kind bool
    (i32.store8 offset=1 (local.get $w) (i32.const 8))    ;; name_len
    (memory.copy (i32.add (local.get $w) (i32.const 2)) (i32.const 576) (i32.const 8))
    (i32.store8 offset=10 (local.get $w)
      (i32.shr_u (i32.and (i32.load8_u offset=19 (local.get $r)) (i32.const 2)) (i32.const 1)))
    (i32.add (local.get $w) (i32.const 11)))

  (func (export "fc_decode") (param $in i32) (param $len i32) (result i64)
    (local $optp i32) (local $optl i32) (local $stl i32) (local $d i32) (local $n i32)
    (local $t i32) (local $typ i32) (local $pay i32) (local $plen i32) (local $ackon i32)
    (local $w i32) (local $ackl i32) (local $count i32) (local $i i32) (local $c i32)
    (local $recs i32)
    (local.set $optp (i32.add (local.get $in) (i32.const 32)))
    (local.set $optl (i32.load offset=20 (local.get $in)))
    (local.set $stl (i32.load offset=24 (local.get $in)))
    (local.set $d (call $data (local.get $in)))
    (local.set $n (i32.load offset=28 (local.get $in)))
    ;; Decode checks the frame again: it is also handed stored frames.
    (local.set $t (call $frame_len (local.get $d) (local.get $n) (i32.load offset=16 (local.get $in))))
    (if (i32.lt_s (local.get $t) (i32.const 0)) (then (return (call $refuse (local.get $t)))))
    (if (i32.ne (local.get $t) (local.get $n))
      (then (return (call $refuse (call $fail (i32.const -1) (i32.const 384) (i32.const 21))))))
    (if (i32.ne (call $crc16 (i32.add (local.get $d) (i32.const 2)) (i32.sub (local.get $n) (i32.const 4)))
                (call $be16 (i32.sub (i32.add (local.get $d) (local.get $n)) (i32.const 2))))
      (then (return (call $refuse (call $fail (i32.const -2) (i32.const 352) (i32.const 15))))))
    (local.set $typ (i32.load8_u offset=3 (local.get $d)))
    (local.set $pay (i32.add (local.get $d) (i32.const 6)))
    (local.set $plen (i32.sub (local.get $n) (i32.const 8)))
    ;; The host writes the options canonically: ack is off exactly when
    ;; they read {"ack":false}.
    (local.set $ackon (i32.const 1))
    (if (i32.eq (local.get $optl) (i32.const 13))
      (then (if (call $eq (local.get $optp) (i32.const 600) (i32.const 13))
        (then (local.set $ackon (i32.const 0))))))
    (local.set $w (i32.const 16432))

    ;; hello: device id, ack, state = the IMEI
    (if (i32.eq (local.get $typ) (i32.const 1))
      (then
        (if (i32.ne (local.get $plen) (i32.const 15))
          (then (return (call $refuse (call $fail (i32.const -1) (i32.const 416) (i32.const 27))))))
        (local.set $i (i32.const 0))
        (block $digits
          (loop $digit
            (br_if $digits (i32.ge_u (local.get $i) (i32.const 15)))
            (local.set $c (i32.load8_u (i32.add (local.get $pay) (local.get $i))))
            (if (i32.or (i32.lt_u (local.get $c) (i32.const 48)) (i32.gt_u (local.get $c) (i32.const 57)))
              (then (return (call $refuse (call $fail (i32.const -1) (i32.const 416) (i32.const 27))))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $digit)))
        (memory.copy (local.get $w) (local.get $pay) (i32.const 15))
        (local.set $w (i32.add (local.get $w) (i32.const 15)))
        (if (local.get $ackon)
          (then (local.set $ackl (call $ack (local.get $w) (i32.const 0x81) (i32.const 0) (i32.const 0)))))
        (memory.copy (i32.add (local.get $w) (local.get $ackl)) (local.get $pay) (i32.const 15))
        (return (call $finish (i32.const 0) (i32.const 2) (i32.const 0) (i32.const 15) (local.get $ackl)
                              (i32.const 0) (i32.const 0) (i32.const 15) (i32.const 0)))))

    ;; heartbeat: an ack, no records
    (if (i32.eq (local.get $typ) (i32.const 3))
      (then
        (if (i32.eqz (local.get $stl))
          (then (return (call $refuse (call $fail (i32.const -5) (i32.const 448) (i32.const 28))))))
        (if (local.get $ackon)
          (then (local.set $ackl (call $ack (local.get $w) (i32.const 0x83) (i32.const 0) (i32.const 0)))))
        (return (call $finish (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (local.get $ackl)
                              (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))

    (if (i32.ne (local.get $typ) (i32.const 2))
      (then (return (call $refuse (call $fail (i32.const -6) (i32.const 544) (i32.const 20))))))

    ;; records: seq u16, count u8, count × 22 bytes
    (if (i32.eqz (local.get $stl))
      (then (return (call $refuse (call $fail (i32.const -5) (i32.const 448) (i32.const 28))))))
    (if (i32.lt_u (local.get $plen) (i32.const 3))
      (then (return (call $refuse (call $fail (i32.const -1) (i32.const 480) (i32.const 46))))))
    (local.set $count (i32.load8_u offset=2 (local.get $pay)))
    (if (i32.ne (local.get $plen) (i32.add (i32.const 3) (i32.mul (local.get $count) (i32.const 22))))
      (then (return (call $refuse (call $fail (i32.const -1) (i32.const 480) (i32.const 46))))))
    (if (local.get $ackon)
      (then (local.set $ackl (call $ack (local.get $w) (i32.const 0x82) (call $be16 (local.get $pay)) (i32.const 1)))))
    (local.set $w (i32.add (local.get $w) (local.get $ackl)))
    (local.set $recs (local.get $w))
    (local.set $i (i32.const 0))
    (block $done
      (loop $rec
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $w (call $record (local.get $w)
          (i32.add (i32.add (local.get $pay) (i32.const 3)) (i32.mul (local.get $i) (i32.const 22)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rec)))
    (call $finish (i32.const 0) (i32.const 0) (local.get $count) (i32.const 0) (local.get $ackl)
                  (i32.const 0) (i32.const 0) (i32.const 0) (i32.sub (local.get $w) (local.get $recs))))
)
