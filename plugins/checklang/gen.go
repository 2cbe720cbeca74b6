package checklang

import (
	"math"
	"slices"
)

// Verdict words of the generated code: status | reason<<16.
const (
	statusWarn = 1
	statusFail = 2
	statusNA   = 3
	// ReasonFail and ReasonWarn are the reason codes of a check's verdicts.
	ReasonFail = 1
	ReasonWarn = 2
)

const (
	magic   = 0x31424346 // "FCB1" little-endian
	metaOff = 16         // where the metadata JSON lives in memory
	pageLog = 16
)

// program is what the generator needs of a parsed check.
type program struct {
	when, fail, warn *node
	fields           []int // declared canonical fields, index order
	attrs            []string
	usesNow          bool
	meta             []byte
}

// generate emits the rule module.
func generate(p *program) *module {
	m := &module{dataOff: metaOff, data: p.meta}
	base := uint32(metaOff+len(p.meta)+63) &^ 63 // the batch buffer
	m.minPages = (base + 1<<pageLog - 1) >> pageLog
	if m.minPages == 0 {
		m.minPages = 1
	}

	abi := newFn("fc_abi", funcType{nil, []byte{tI32}})
	abi.i32(1)

	meta := newFn("fc_meta", funcType{nil, []byte{tI64}})
	meta.i64(int64(metaOff)<<32 | int64(len(p.meta)))

	m.funcs = []*fn{abi, meta, genAlloc(base)}
	m.exports = []string{"fc_abi", "fc_meta", "fc_alloc", "fc_check"}
	var sinIdx, asinIdx, havIdx uint32
	distance := false
	for _, e := range []*node{p.when, p.fail, p.warn} {
		if e != nil && hasDistance(e) {
			distance = true
		}
	}
	check := &gen{p: p}
	if distance {
		sinIdx, asinIdx, havIdx = 4, 5, 6
		check.havIdx = havIdx
	}
	m.funcs = append(m.funcs, check.fcCheck())
	if distance {
		m.funcs = append(m.funcs, genSin(), genAsin(), genHav(sinIdx, asinIdx))
		m.exports = append(m.exports, "", "", "")
	}
	return m
}

// genAlloc is fc_alloc: the one buffer at base, grown to fit; 0 when the
// memory cannot grow.
func genAlloc(base uint32) *fn {
	f := newFn("fc_alloc", funcType{[]byte{tI32}, []byte{tI32}})
	need := f.local(tI64)
	f.i64(int64(base))
	f.get(0)
	f.op(0xad, "i64.extend_i32_u")
	f.op(0x7c, "i64.add")
	f.tee(need)
	memBytes64(f)
	f.op(0x56, "i64.gt_u")
	f.ifThen(blockVoid)
	f.get(need)
	memBytes64(f)
	f.op(0x7d, "i64.sub")
	f.i64(1<<pageLog - 1)
	f.op(0x7c, "i64.add")
	f.i64(pageLog)
	f.op(0x88, "i64.shr_u")
	f.op(0xa7, "i32.wrap_i64")
	f.memoryGrow()
	f.i32(-1)
	f.op(0x46, "i32.eq")
	f.ifThen(blockVoid)
	f.i32(0)
	f.ret()
	f.end()
	f.end()
	f.i32(int32(base))
	return f
}

// memBytes64 pushes the memory size in bytes as i64.
func memBytes64(f *fn) {
	f.memorySize()
	f.op(0xad, "i64.extend_i32_u")
	f.i64(pageLog)
	f.op(0x86, "i64.shl")
}

type gen struct {
	p      *program
	f      *fn
	vals   map[int]uint32 // slot → f64 local of the current signal's value
	havIdx uint32
}

// timeToF64 converts the i64 time on the stack to f64 ms (NaN for the
// absent value, i64 minimum).
func timeToF64(f *fn, tmp uint32) {
	f.tee(tmp)
	f.i64(math.MinInt64)
	f.op(0x51, "i64.eq")
	f.ifThen(tF64)
	f.f64(math.NaN())
	f.elseDo()
	f.get(tmp)
	f.op(0xb9, "f64.convert_i64_s")
	f.end()
}

func (g *gen) fcCheck() *fn {
	p := g.p
	f := newFn("fc_check", funcType{[]byte{tI32, tI32}, []byte{tI32}})
	g.f = f
	const ptr, n = 0, 1
	i, cnt, off, vp := f.local(tI32), f.local(tI32), f.local(tI32), f.local(tI32)
	tmp := f.local(tI64)
	cols := len(p.fields) + len(p.attrs)
	var mask uint64
	for _, fi := range p.fields {
		mask |= 1 << fi
	}
	bad := func(code int32) {
		f.ifThen(blockVoid)
		f.i32(code)
		f.ret()
		f.end()
	}
	// Header: magic, n, field mask, attribute count (-2), then size (-3).
	f.get(ptr)
	f.i32Load(0)
	f.i32(magic)
	f.op(0x47, "i32.ne")
	bad(-2)
	f.get(ptr)
	f.i32Load(4)
	f.get(n)
	f.op(0x47, "i32.ne")
	bad(-2)
	f.get(ptr)
	f.i64Load(8)
	f.i64(int64(mask))
	f.op(0x52, "i64.ne")
	bad(-2)
	f.get(ptr)
	f.i32Load(24)
	f.i32(int32(len(p.attrs)))
	f.op(0x47, "i32.ne")
	bad(-2)
	f.get(ptr)
	f.op(0xad, "i64.extend_i32_u")
	f.get(n)
	f.op(0xad, "i64.extend_i32_u")
	f.i64(int64(8*cols + 4))
	f.op(0x7e, "i64.mul")
	f.op(0x7c, "i64.add")
	f.i64(64)
	f.op(0x7c, "i64.add")
	memBytes64(f)
	f.op(0x56, "i64.gt_u")
	bad(-3)

	// Column bases and the verdict pointer.
	// dst = ptr + 64 + n*8*k: column k after the batch header (k = cols:
	// the verdicts after the last column).
	after := func(k int, dst uint32) {
		f.get(ptr)
		f.i32(64)
		f.op(0x6a, "i32.add")
		f.get(n)
		f.i32(int32(8 * k))
		f.op(0x6c, "i32.mul")
		f.op(0x6a, "i32.add")
		f.set(dst)
	}
	colBase := make([]uint32, cols)
	for j := range cols {
		colBase[j] = f.local(tI32)
		after(j, colBase[j])
	}
	after(cols, vp)

	g.vals = map[int]uint32{}
	slots := make([]int, 0, cols)
	slots = append(slots, p.fields...)
	for a := range p.attrs {
		slots = append(slots, slotNow+1+a)
	}
	for _, s := range slots {
		g.vals[s] = f.local(tF64)
	}
	if p.usesNow {
		g.vals[slotNow] = f.local(tF64)
		f.get(ptr)
		f.i64Load(16)
		timeToF64(f, tmp)
		f.set(g.vals[slotNow])
	}

	f.block(blockVoid)
	f.get(n)
	f.op(0x45, "i32.eqz")
	f.brIf(0)
	f.loop(blockVoid)
	for j, s := range slots {
		f.get(colBase[j])
		f.get(off)
		f.op(0x6a, "i32.add")
		if s < numField && isTime(s) {
			f.i64Load(0)
			timeToF64(f, tmp)
		} else {
			f.f64Load(0)
		}
		f.set(g.vals[s])
	}
	f.get(vp)
	counted := func(word int32) {
		f.get(cnt)
		f.i32(1)
		f.op(0x6a, "i32.add")
		f.set(cnt)
		f.i32(word)
	}
	if p.when != nil {
		g.expr(p.when)
		f.ifThen(tI32)
	}
	g.expr(p.fail)
	f.ifThen(tI32)
	counted(statusFail | ReasonFail<<16)
	f.elseDo()
	if p.warn != nil {
		g.expr(p.warn)
		f.ifThen(tI32)
		counted(statusWarn | ReasonWarn<<16)
		f.elseDo()
		f.i32(0)
		f.end()
	} else {
		f.i32(0)
	}
	f.end()
	if p.when != nil {
		f.elseDo()
		f.i32(statusNA)
		f.end()
	}
	f.i32Store(0)
	// next signal
	for _, st := range []struct {
		l    uint32
		step int32
	}{{off, 8}, {vp, 4}, {i, 1}} {
		f.get(st.l)
		f.i32(st.step)
		f.op(0x6a, "i32.add")
		f.set(st.l)
	}
	f.get(i)
	f.get(n)
	f.op(0x49, "i32.lt_u")
	f.brIf(0)
	f.end()
	f.end()
	f.get(cnt)
	return f
}

var f64Ops = map[kind]struct {
	code byte
	name string
}{
	kAdd: {0xa0, "f64.add"}, kSub: {0xa1, "f64.sub"}, kMul: {0xa2, "f64.mul"}, kDiv: {0xa3, "f64.div"},
	kMin: {0xa4, "f64.min"}, kMax: {0xa5, "f64.max"},
	kLT: {0x63, "f64.lt"}, kGT: {0x64, "f64.gt"}, kLE: {0x65, "f64.le"}, kGE: {0x66, "f64.ge"}, kEQ: {0x61, "f64.eq"},
}

// expr emits n, leaving an f64 (numbers) or an i32 0/1 (conditions).
func (g *gen) expr(n *node) {
	f := g.f
	switch n.k {
	case kNum:
		f.f64(n.num)
	case kVar:
		f.get(g.vals[n.slot])
	case kNeg:
		g.expr(n.args[0])
		f.op(0x9a, "f64.neg")
	case kAbs:
		g.expr(n.args[0])
		f.op(0x99, "f64.abs")
	case kAdd, kSub, kMul, kDiv, kMin, kMax, kLT, kGT, kLE, kGE, kEQ:
		g.expr(n.args[0])
		g.expr(n.args[1])
		o := f64Ops[n.k]
		f.op(o.code, o.name)
	case kNE:
		a, b := f.local(tF64), f.local(tF64)
		g.expr(n.args[0])
		f.set(a)
		g.expr(n.args[1])
		f.set(b)
		f.get(a)
		f.get(b)
		f.op(0x63, "f64.lt")
		f.get(a)
		f.get(b)
		f.op(0x64, "f64.gt")
		f.op(0x72, "i32.or")
	case kAnd, kOr:
		g.expr(n.args[0])
		g.expr(n.args[1])
		if n.k == kAnd {
			f.op(0x71, "i32.and")
		} else {
			f.op(0x72, "i32.or")
		}
	case kNot:
		g.expr(n.args[0])
		f.op(0x45, "i32.eqz")
	case kBetween:
		x := f.local(tF64)
		g.expr(n.args[0])
		f.set(x)
		g.expr(n.args[1])
		f.get(x)
		f.op(0x65, "f64.le")
		f.get(x)
		g.expr(n.args[2])
		f.op(0x65, "f64.le")
		f.op(0x71, "i32.and")
	case kMissing:
		x := f.local(tF64)
		g.expr(n.args[0])
		f.tee(x)
		f.get(x)
		f.op(0x62, "f64.ne")
	case kDistance:
		f.get(g.vals[fPrevLat])
		f.get(g.vals[fPrevLon])
		f.get(g.vals[fLat])
		f.get(g.vals[fLon])
		f.call(g.havIdx, "distance_m")
	case kDT:
		f.get(g.vals[fTS])
		f.get(g.vals[fPrevTS])
		f.op(0xa1, "f64.sub")
		f.f64(1000)
		f.op(0xa3, "f64.div")
	case kAge:
		f.get(g.vals[slotNow])
		f.get(g.vals[fTS])
		f.op(0xa1, "f64.sub")
		f.f64(1000)
		f.op(0xa3, "f64.div")
	default:
		panic("checklang: no code for node kind")
	}
}

// Polynomial coefficients of sin (Taylor, |r| ≤ π/2, 11 terms) and asin
// (Taylor, 0 ≤ t ≤ 1/2, 25 terms): both below 1e-17 truncation error.
var sinCoef, asinCoef = func() ([]float64, []float64) {
	var s []float64
	fact := 1.0
	for k := 0; k <= 10; k++ {
		if k > 0 {
			fact *= float64(2*k) * float64(2*k+1)
		}
		c := 1 / fact
		if k%2 == 1 {
			c = -c
		}
		s = append(s, c)
	}
	var a []float64
	ak := 1.0
	for k := 0; k <= 24; k++ {
		if k > 0 {
			ak *= float64(2*k-1) / float64(2*k)
		}
		a = append(a, ak/float64(2*k+1))
	}
	return s, a
}()

// horner emits x * Σ c_k y^k with x in local x and y in local y.
func horner(f *fn, c []float64, x, y uint32) {
	c = slices.Clone(c)
	f.f64(c[len(c)-1])
	for k := len(c) - 2; k >= 0; k-- {
		f.get(y)
		f.op(0xa2, "f64.mul")
		f.f64(c[k])
		f.op(0xa0, "f64.add")
	}
	f.get(x)
	f.op(0xa2, "f64.mul")
}

const (
	piA = math.Pi                // π rounded to f64
	piB = 1.2246467991473532e-16 // π − piA
)

// genSin is sin(x): k = round(x/π), r = x − kπ (two-part π), sin(x) =
// (−1)^k · sin(r).
func genSin() *fn {
	f := newFn("sin", funcType{[]byte{tF64}, []byte{tF64}})
	k, r, r2 := f.local(tF64), f.local(tF64), f.local(tF64)
	f.get(0)
	f.f64(1 / math.Pi)
	f.op(0xa2, "f64.mul")
	f.op(0x9e, "f64.nearest")
	f.set(k)
	f.get(0)
	f.get(k)
	f.f64(piA)
	f.op(0xa2, "f64.mul")
	f.op(0xa1, "f64.sub")
	f.get(k)
	f.f64(piB)
	f.op(0xa2, "f64.mul")
	f.op(0xa1, "f64.sub")
	f.tee(r)
	f.get(r)
	f.op(0xa2, "f64.mul")
	f.set(r2)
	horner(f, sinCoef, r, r2)
	// sign: 1 − 2·|k − 2·round(k/2)|
	f.f64(1)
	f.f64(2)
	f.get(k)
	f.f64(2)
	f.get(k)
	f.f64(0.5)
	f.op(0xa2, "f64.mul")
	f.op(0x9e, "f64.nearest")
	f.op(0xa2, "f64.mul")
	f.op(0xa1, "f64.sub")
	f.op(0x99, "f64.abs")
	f.op(0xa2, "f64.mul")
	f.op(0xa1, "f64.sub")
	f.op(0xa2, "f64.mul")
	return f
}

// genAsin is asin(s) for 0 ≤ s ≤ 1 (NaN stays NaN): the series below 1/2,
// π/2 − 2·asin(√((1−s)/2)) above.
func genAsin() *fn {
	f := newFn("asin", funcType{[]byte{tF64}, []byte{tF64}})
	t, t2 := f.local(tF64), f.local(tF64)
	f.get(0)
	f.f64(0.5)
	f.op(0x64, "f64.gt")
	f.ifThen(tF64)
	f.f64(math.Pi / 2)
	f.f64(2)
	f.f64(1)
	f.get(0)
	f.op(0xa1, "f64.sub")
	f.f64(0.5)
	f.op(0xa2, "f64.mul")
	f.op(0x9f, "f64.sqrt")
	f.tee(t)
	f.get(t)
	f.op(0xa2, "f64.mul")
	f.set(t2)
	horner(f, asinCoef, t, t2)
	f.op(0xa2, "f64.mul")
	f.op(0xa1, "f64.sub")
	f.elseDo()
	f.get(0)
	f.tee(t)
	f.get(t)
	f.op(0xa2, "f64.mul")
	f.set(t2)
	horner(f, asinCoef, t, t2)
	f.end()
	return f
}

// genHav is distance_m(lat1, lon1, lat2, lon2), the same formula as
// Haversine, with cos(x) = sin(π/2 − |x|).
func genHav(sinIdx, asinIdx uint32) *fn {
	f := newFn("distance_m", funcType{[]byte{tF64, tF64, tF64, tF64}, []byte{tF64}})
	s1, s2 := f.local(tF64), f.local(tF64)
	// Not a position: missing (keeps sin's argument within ±π).
	for k, limit := range []float64{90, 180, 90, 180} {
		f.get(uint32(k))
		f.op(0x99, "f64.abs")
		f.f64(limit)
		f.op(0x65, "f64.le")
		if k > 0 {
			f.op(0x71, "i32.and")
		}
	}
	f.op(0x45, "i32.eqz")
	f.ifThen(blockVoid)
	f.f64(math.NaN())
	f.ret()
	f.end()
	half := func(a, b uint32, dst uint32) {
		f.get(b)
		f.get(a)
		f.op(0xa1, "f64.sub")
		f.f64(degToRad)
		f.op(0xa2, "f64.mul")
		f.f64(2)
		f.op(0xa3, "f64.div")
		f.call(sinIdx, "sin")
		f.set(dst)
	}
	half(0, 2, s1)
	half(1, 3, s2)
	cos := func(lat uint32) {
		f.f64(math.Pi / 2)
		f.get(lat)
		f.f64(degToRad)
		f.op(0xa2, "f64.mul")
		f.op(0x99, "f64.abs")
		f.op(0xa1, "f64.sub")
		f.call(sinIdx, "sin")
	}
	f.f64(2 * earthRadiusM)
	f.get(s1)
	f.get(s1)
	f.op(0xa2, "f64.mul")
	cos(0)
	cos(2)
	f.op(0xa2, "f64.mul")
	f.get(s2)
	f.op(0xa2, "f64.mul")
	f.get(s2)
	f.op(0xa2, "f64.mul")
	f.op(0xa0, "f64.add")
	f.op(0x9f, "f64.sqrt")
	f.set(s1)
	f.f64(1)
	f.get(s1)
	f.op(0xa4, "f64.min")
	f.call(asinIdx, "asin")
	f.op(0xa2, "f64.mul")
	return f
}
