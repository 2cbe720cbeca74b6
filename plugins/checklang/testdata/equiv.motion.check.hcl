# A check that exercises most of the language; its hand-written Go
# equivalent is testdata/go/motion.
check "equiv.motion" {
  dimension = "consistency"
  severity  = "critical"
  attrs     = ["ignition"]
  when      = "not is_missing(lat) and not is_missing(lon)"
  fail_if   = "not between(lat, -90, 90) or abs(lon) > 180 or (dt_s() > 0 and distance_m() / dt_s() * 3.6 > 300)"
  warn_if   = <<-EXPR
    (speed > 5 and ignition == 0)
    or age_s() > 3600
    or max(rpm, 0) / 60 > 100
    or -heading < -360
    or (ts - recv != 0 and is_missing(fuel))
    or min(odometer - prev_odometer, 1000) < 0
  EXPR
  reason      = "position out of range or implied speed above 300 km/h"
  warn_reason = "implausible motion, engine or time values"

  test "still" {
    in   = { lat = 45, lon = 7, ts = 1767225600000, recv = 1767225600000, fuel = 50 }
    now_ms = 1767225600000
    want = "pass"
  }
  test "no position" {
    want = "not_applicable"
  }
  test "bad latitude" {
    in   = { lat = 91, lon = 7 }
    want = "fail"
  }
  test "jump" {
    in   = { lat = 46, lon = 7, prev_lat = 45, prev_lon = 7, ts = 1767226200000, prev_ts = 1767225600000 }
    want = "fail"
  }
  test "moving with ignition off" {
    in     = { lat = 45, lon = 7, speed = 30, ts = 1767225600000, recv = 1767225600000 }
    attrs  = { ignition = 0 }
    now_ms = 1767225600000
    want   = "warn"
  }
}
