package checklang

import "math"

// Earth radius of distance_m() in metres (the mean radius, as the built-in
// gps.teleport rule uses).
const earthRadiusM = 6371008.8

const degToRad = math.Pi / 180

// Haversine is distance_m(): the great-circle distance in metres between
// (lat1, lon1) and (lat2, lon2) in degrees; NaN (missing) when any is NaN
// or not a position (a latitude outside [-90, 90], a longitude outside
// [-180, 180]). It is the
// reference for the generated code, which computes sin and asin with its
// own polynomials (they agree to a few units in the last place).
func Haversine(lat1, lon1, lat2, lon2 float64) float64 {
	if !(math.Abs(lat1) <= 90 && math.Abs(lat2) <= 90 && math.Abs(lon1) <= 180 && math.Abs(lon2) <= 180) {
		return math.NaN()
	}
	p1, p2 := lat1*degToRad, lat2*degToRad
	dp, dl := (lat2-lat1)*degToRad, (lon2-lon1)*degToRad
	s1, s2 := math.Sin(dp/2), math.Sin(dl/2)
	a := s1*s1 + math.Cos(p1)*math.Cos(p2)*s2*s2
	return 2 * earthRadiusM * math.Asin(wasmMin(1, math.Sqrt(a)))
}

// eval is the reference interpreter of an expression: slot values (times
// in Unix ms as float64, NaN when absent). Numbers are float64 with IEEE
// semantics; a comparison with NaN is false (also for !=).
func eval(n *node, v []float64) (float64, bool) {
	switch n.k {
	case kNum:
		return n.num, false
	case kVar:
		return v[n.slot], false
	case kNeg:
		x, _ := eval(n.args[0], v)
		return -x, false
	case kAdd, kSub, kMul, kDiv, kMin, kMax:
		a, _ := eval(n.args[0], v)
		b, _ := eval(n.args[1], v)
		return arith(n.k, a, b), false
	case kAbs:
		x, _ := eval(n.args[0], v)
		return math.Abs(x), false
	case kLT, kLE, kGT, kGE, kEQ, kNE:
		a, _ := eval(n.args[0], v)
		b, _ := eval(n.args[1], v)
		return 0, compare(n.k, a, b)
	case kAnd:
		_, a := eval(n.args[0], v)
		_, b := eval(n.args[1], v)
		return 0, a && b
	case kOr:
		_, a := eval(n.args[0], v)
		_, b := eval(n.args[1], v)
		return 0, a || b
	case kNot:
		_, a := eval(n.args[0], v)
		return 0, !a
	case kBetween:
		x, _ := eval(n.args[0], v)
		lo, _ := eval(n.args[1], v)
		hi, _ := eval(n.args[2], v)
		return 0, lo <= x && x <= hi
	case kMissing:
		x, _ := eval(n.args[0], v)
		return 0, x != x
	case kDistance:
		return Haversine(v[fPrevLat], v[fPrevLon], v[fLat], v[fLon]), false
	case kDT:
		return (v[fTS] - v[fPrevTS]) / 1000, false
	case kAge:
		return (v[slotNow] - v[fTS]) / 1000, false
	}
	panic("unknown node")
}

func compare(k kind, a, b float64) bool {
	switch k {
	case kLT:
		return a < b
	case kLE:
		return a <= b
	case kGT:
		return a > b
	case kGE:
		return a >= b
	case kEQ:
		return a == b
	}
	return a < b || a > b // kNE: false when either is NaN
}
