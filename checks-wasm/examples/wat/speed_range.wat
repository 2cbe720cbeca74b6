;; example.speed_range: a fleetcore quality rule (ABI v1) in hand-written
;; WebAssembly text. Fails a speed below 0 (reason 1) or above 300 km/h
;; (reason 2); not applicable when the signal has no speed.
;; Build: wat2wasm speed_range.wat -o example.speed_range.wasm
;;
;; Memory layout: page 0 holds the metadata JSON at 1024; the batch buffer
;; starts at 65536 (page 1) and the memory grows to fit the batch.
(module
  (memory (export "memory") 2)
  (data (i32.const 1024) "{\"name\":\"example.speed_range\",\"version\":\"1.0.0\",\"dimension\":\"validity\",\"severity\":\"warning\",\"fields\":[\"speed\"],\"attrs\":[],\"reasons\":{\"1\":\"speed below 0 km/h\",\"2\":\"speed above 300 km/h\"},\"tests\":[{\"name\":\"cruising\",\"in\":{\"speed\":90},\"want\":\"pass\",\"reason\":0},{\"name\":\"300 passes\",\"in\":{\"speed\":300},\"want\":\"pass\",\"reason\":0},{\"name\":\"300.1 fails\",\"in\":{\"speed\":300.1},\"want\":\"fail\",\"reason\":2},{\"name\":\"negative\",\"in\":{\"speed\":-0.5},\"want\":\"fail\",\"reason\":1},{\"name\":\"absent\",\"in\":{},\"want\":\"not_applicable\",\"reason\":0}]}")

  (func (export "fc_abi") (result i32) (i32.const 1))

  ;; ptr << 32 | len of the metadata
  (func (export "fc_meta") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 520)))

  ;; One buffer at 65536, grown to fit; 0 when the memory cannot grow.
  (func (export "fc_alloc") (param $size i32) (result i32)
    (local $need i32)
    (if (i32.le_s (local.get $size) (i32.const 0)) (then (return (i32.const 0))))
    ;; pages needed = 1 + ceil(size / 65536)
    (local.set $need
      (i32.add (i32.const 1)
        (i32.shr_u (i32.add (local.get $size) (i32.const 65535)) (i32.const 16))))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 65536))

  ;; The batch has one column (speed, field 5) at ptr+64, then the verdicts.
  (func (export "fc_check") (param $ptr i32) (param $n i32) (result i32)
    (local $i i32) (local $v f64) (local $col i32) (local $out i32) (local $bad i32) (local $w i32)
    ;; magic "FCB1", n, field mask = bit 5, no attrs
    (if (i32.ne (i32.load (local.get $ptr)) (i32.const 0x31424346)) (then (return (i32.const -2))))
    (if (i32.ne (i32.load offset=4 (local.get $ptr)) (local.get $n)) (then (return (i32.const -2))))
    (if (i64.ne (i64.load offset=8 (local.get $ptr)) (i64.const 32)) (then (return (i32.const -2))))
    (if (i32.ne (i32.load offset=24 (local.get $ptr)) (i32.const 0)) (then (return (i32.const -2))))
    (local.set $col (i32.add (local.get $ptr) (i32.const 64)))
    (local.set $out (i32.add (local.get $col) (i32.shl (local.get $n) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $v (f64.load (i32.add (local.get $col) (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $w (i32.const 0))
        (if (f64.ne (local.get $v) (local.get $v))
          (then (local.set $w (i32.const 3)))
          (else
            (if (f64.lt (local.get $v) (f64.const 0))
              (then (local.set $w (i32.const 0x10002)))
              (else
                (if (f64.gt (local.get $v) (f64.const 300))
                  (then (local.set $w (i32.const 0x20002))))))))
        (if (i32.eq (i32.and (local.get $w) (i32.const 0xff)) (i32.const 2))
          (then (local.set $bad (i32.add (local.get $bad) (i32.const 1)))))
        (i32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (local.get $w))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $bad))
)
