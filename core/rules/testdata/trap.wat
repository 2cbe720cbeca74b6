;; test.trap: a rule over speed that traps (unreachable) when any signal of
;; the call has speed -3, fails a negative speed (reason 1) and passes the
;; rest. The scheduler tests use it to check that a batch a rule cannot
;; evaluate is recorded as not evaluated and retried, never failed.
(module
  (memory (export "memory") 2)
  (data (i32.const 1024) "{\22name\22:\22test.trap\22,\22version\22:\221.0.0\22,\22dimension\22:\22validity\22,\22severity\22:\22info\22,\22fields\22:[\22speed\22],\22attrs\22:[],\22reasons\22:{\221\22:\22negative speed\22}}")

  (func (export "fc_abi") (result i32) (i32.const 1))

  (func (export "fc_meta") (result i64)
    (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 142)))

  (func (export "fc_alloc") (param $size i32) (result i32)
    (local $need i32)
    (if (i32.le_s (local.get $size) (i32.const 0)) (then (return (i32.const 0))))
    (local.set $need
      (i32.add (i32.const 1)
        (i32.shr_u (i32.add (local.get $size) (i32.const 65535)) (i32.const 16))))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (i32.const 65536))

  (func (export "fc_check") (param $ptr i32) (param $n i32) (result i32)
    (local $i i32) (local $v f64) (local $col i32) (local $out i32) (local $bad i32)
    (local.set $col (i32.add (local.get $ptr) (i32.const 64)))
    (local.set $out (i32.add (local.get $col) (i32.shl (local.get $n) (i32.const 3))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $v (f64.load (i32.add (local.get $col) (i32.shl (local.get $i) (i32.const 3)))))
        (if (f64.eq (local.get $v) (f64.const -3)) (then (unreachable)))
        (if (f64.lt (local.get $v) (f64.const 0))
          (then
            (i32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (i32.const 0x10002))
            (local.set $bad (i32.add (local.get $bad) (i32.const 1))))
          (else
            (i32.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $bad))
)
