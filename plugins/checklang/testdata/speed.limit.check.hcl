# The one-line check of the guide.
check "speed.limit" {
  dimension = "validity"
  fail_if   = "speed > 200"
  warn_if   = "speed > 160"
  reason    = "speed {speed} km/h over the limit"

  test "cruising" {
    in   = { speed = 90 }
    want = "pass"
  }
  test "fast" {
    in   = { speed = 170 }
    want = "warn"
  }
  test "too fast" {
    in   = { speed = 250 }
    want = "fail"
  }
  test "no speed" {
    want = "pass"
  }
}
