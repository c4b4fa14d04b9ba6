;; Sums a JSON array of integers read from stdin and prints the total.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  ;; 0: iovec, 16: byte count, 64..121: output digits, 256: error text, 1024..: input
  (memory (export "memory") 2)
  (data (i32.const 256) "input must be a JSON array of integers\n")
  (global $pos (mut i32) (i32.const 0))
  (global $end (mut i32) (i32.const 0))

  (func $fail
    (i32.store (i32.const 0) (i32.const 256))
    (i32.store (i32.const 4) (i32.const 39))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $proc_exit (i32.const 1)))

  (func $read_all (result i32)
    (local $total i32)
    (loop $more
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $total)))
      (i32.store (i32.const 4) (i32.sub (i32.const 130048) (local.get $total)))
      (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16))
        (then (call $fail)))
      (if (i32.load (i32.const 16))
        (then
          (local.set $total (i32.add (local.get $total) (i32.load (i32.const 16))))
          (if (i32.ge_u (local.get $total) (i32.const 130048)) (then (call $fail)))
          (br $more))))
    (local.get $total))

  (func $peek (result i32)
    (if (result i32) (i32.lt_u (global.get $pos) (global.get $end))
      (then (i32.load8_u (global.get $pos)))
      (else (i32.const -1))))

  (func $advance (global.set $pos (i32.add (global.get $pos) (i32.const 1))))

  (func $ws (local $c i32)
    (loop $l
      (local.set $c (call $peek))
      (if (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 10)))
                  (i32.or (i32.eq (local.get $c) (i32.const 9)) (i32.eq (local.get $c) (i32.const 13))))
        (then (call $advance) (br $l)))))

  (func $int (result i64)
    (local $neg i32) (local $v i64) (local $d i32) (local $digits i32)
    (if (i32.eq (call $peek) (i32.const 45))
      (then (local.set $neg (i32.const 1)) (call $advance)))
    (block $stop
      (loop $l
        (local.set $d (i32.sub (call $peek) (i32.const 48)))
        (br_if $stop (i32.gt_u (local.get $d) (i32.const 9)))
        (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10))
                               (i64.extend_i32_u (local.get $d))))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (call $advance)
        (br $l)))
    (if (i32.eqz (local.get $digits)) (then (call $fail)))
    (if (result i64) (local.get $neg)
      (then (i64.sub (i64.const 0) (local.get $v)))
      (else (local.get $v))))

  (func $print (param $v i64)
    (local $p i32) (local $neg i32) (local $u i64)
    (i32.store8 (i32.const 120) (i32.const 10))
    (local.set $p (i32.const 120))
    (local.set $neg (i64.lt_s (local.get $v) (i64.const 0)))
    (local.set $u (if (result i64) (local.get $neg)
      (then (i64.sub (i64.const 0) (local.get $v)))
      (else (local.get $v))))
    (loop $d
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $u) (i64.const 10)))))
      (local.set $u (i64.div_u (local.get $u) (i64.const 10)))
      (br_if $d (i64.ne (local.get $u) (i64.const 0))))
    (if (local.get $neg)
      (then
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.const 45))))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (i32.sub (i32.const 121) (local.get $p)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16))))

  (func (export "_start")
    (local $sum i64) (local $c i32)
    (global.set $pos (i32.const 1024))
    (global.set $end (i32.add (i32.const 1024) (call $read_all)))
    (call $ws)
    (if (i32.ne (call $peek) (i32.const 91)) (then (call $fail)))
    (call $advance)
    (call $ws)
    (if (i32.eq (call $peek) (i32.const 93))
      (then (call $advance))
      (else
        (block $done
          (loop $items
            (call $ws)
            (local.set $sum (i64.add (local.get $sum) (call $int)))
            (call $ws)
            (local.set $c (call $peek))
            (call $advance)
            (br_if $items (i32.eq (local.get $c) (i32.const 44)))
            (br_if $done (i32.eq (local.get $c) (i32.const 93)))
            (call $fail)))))
    (call $ws)
    (if (i32.ne (global.get $pos) (global.get $end)) (then (call $fail)))
    (call $print (local.get $sum))))
