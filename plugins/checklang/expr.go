package checklang

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits on one expression, so that hostile input is refused at load with a
// clear error instead of costing the host a deep recursion, a huge module
// or a slow batch.
const (
	MaxExprBytes  = 2048 // source length of one expression
	MaxDepth      = 32   // nesting of parentheses, not, unary minus and calls
	MaxNodes      = 256  // operators, operands and calls in one expression
	MaxLiteral    = 1e15 // largest magnitude of a number literal
	maxLiteralLen = 32   // characters of one number literal
)

// Canonical field names by ABI index (checks-wasm/ABI.md).
var fieldNames = [...]string{
	"ts", "recv", "lat", "lon", "alt", "speed", "heading", "sats", "hdop",
	"rpm", "coolant", "fuel", "voltage", "odometer", "engine_load", "throttle",
	"prev_ts", "prev_lat", "prev_lon", "prev_odometer",
}

// Field indexes the generator needs by name.
const (
	fTS      = 0
	fLat     = 2
	fLon     = 3
	fPrevTS  = 16
	fPrevLat = 17
	fPrevLon = 18
	numField = 20
)

// isTime reports whether canonical field i is an i64 time column.
func isTime(i int) bool { return i == 0 || i == 1 || i == fPrevTS }

// Variable slots: 0..19 canonical fields, 20 the host clock (now), then
// the declared attributes.
const slotNow = numField

type kind int

const (
	kNum kind = iota // literal
	kVar             // field, now or attribute (slot)
	kNeg             // -x
	kAdd             // x + y
	kSub             // x - y
	kMul             // x * y
	kDiv             // x / y
	kLT              // comparisons
	kLE
	kGT
	kGE
	kEQ
	kNE
	kAnd
	kOr
	kNot
	kAbs
	kMin
	kMax
	kBetween
	kMissing
	kDistance
	kDT
	kAge
)

type typ int

const (
	tyNum typ = iota
	tyBool
)

func (t typ) String() string {
	if t == tyBool {
		return "a condition"
	}
	return "a number"
}

// node is one node of a typed expression tree.
type node struct {
	k    kind
	num  float64
	slot int
	args []*node
	pos  int // byte offset in the expression
	t    typ
}

// posError is an error at a byte offset of an expression.
type posError struct {
	pos int
	msg string
}

func (e *posError) Error() string { return e.msg }

type token struct {
	kind string // num, ident, op, eof
	text string
	pos  int
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == '_') {
				j++
			}
			if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
				j++
				if j < len(src) && (src[j] == '+' || src[j] == '-') {
					j++
				}
				for j < len(src) && src[j] >= '0' && src[j] <= '9' {
					j++
				}
			}
			toks = append(toks, token{"num", src[i:j], i})
			i = j
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
			j := i
			for j < len(src) && (src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= '0' && src[j] <= '9' || src[j] == '_') {
				j++
			}
			toks = append(toks, token{"ident", src[i:j], i})
			i = j
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch two {
			case "<=", ">=", "==", "!=":
				toks = append(toks, token{"op", two, i})
				i += 2
				continue
			case "&&", "||":
				return nil, &posError{i, fmt.Sprintf("unexpected %q: write %s", two, map[string]string{"&&": "and", "||": "or"}[two])}
			}
			switch c {
			case '+', '-', '*', '/', '<', '>', '(', ')', ',':
				toks = append(toks, token{"op", string(c), i})
				i++
			case '!':
				return nil, &posError{i, `unexpected "!": write not`}
			case '=':
				return nil, &posError{i, `unexpected "=": write == to compare`}
			default:
				return nil, &posError{i, fmt.Sprintf("unexpected character %q", rune(c))}
			}
		}
	}
	return append(toks, token{"eof", "", len(src)}), nil
}

// scope resolves names: canonical fields, now and declared attributes.
type scope struct {
	attrs map[string]int // attribute name → slot
}

type parser struct {
	toks  []token
	i     int
	depth int
	nodes int
	sc    *scope
}

// parseExpr parses and type-checks an expression; want is the type the
// expression must have.
func parseExpr(src string, sc *scope, want typ) (*node, error) {
	if len(src) > MaxExprBytes {
		return nil, &posError{0, fmt.Sprintf("expression is %d bytes long, at most %d are allowed", len(src), MaxExprBytes)}
	}
	if strings.TrimSpace(src) == "" {
		return nil, &posError{0, "empty expression"}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, sc: sc}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != "eof" {
		return nil, &posError{t.pos, fmt.Sprintf("unexpected %q after the end of the expression", t.text)}
	}
	if n.t != want {
		return nil, &posError{0, fmt.Sprintf("expression is %s, want %s", n.t, want)}
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return (t.kind == "op" || t.kind == "ident") && t.text == s
}

func (p *parser) mk(k kind, pos int, t typ, args ...*node) (*node, error) {
	p.nodes++
	if p.nodes > MaxNodes {
		return nil, &posError{pos, fmt.Sprintf("expression has more than %d operators and operands", MaxNodes)}
	}
	return &node{k: k, pos: pos, t: t, args: args}, nil
}

func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxDepth {
		return &posError{pos, fmt.Sprintf("expression nested more than %d deep", MaxDepth)}
	}
	return nil
}

func need(n *node, t typ, what string) error {
	if n.t != t {
		return &posError{n.pos, fmt.Sprintf("%s must be %s, not %s", what, t, n.t)}
	}
	return nil
}

func (p *parser) binary(sub func() (*node, error), ops map[string]kind, t, operand typ) (*node, error) {
	l, err := sub()
	if err != nil {
		return nil, err
	}
	for {
		tok := p.peek()
		k, ok := ops[tok.text]
		if !ok || (tok.kind != "op" && tok.kind != "ident") {
			return l, nil
		}
		p.next()
		r, err := sub()
		if err != nil {
			return nil, err
		}
		if err := need(l, operand, "the left operand of "+tok.text); err != nil {
			return nil, err
		}
		if err := need(r, operand, "the right operand of "+tok.text); err != nil {
			return nil, err
		}
		if l, err = p.mk(k, tok.pos, t, l, r); err != nil {
			return nil, err
		}
	}
}

func (p *parser) or() (*node, error) {
	return p.binary(p.and, map[string]kind{"or": kOr}, tyBool, tyBool)
}

func (p *parser) and() (*node, error) {
	return p.binary(p.not, map[string]kind{"and": kAnd}, tyBool, tyBool)
}

func (p *parser) not() (*node, error) {
	if p.isOp("not") {
		tok := p.next()
		if err := p.enter(tok.pos); err != nil {
			return nil, err
		}
		x, err := p.not()
		p.depth--
		if err != nil {
			return nil, err
		}
		if err := need(x, tyBool, "the operand of not"); err != nil {
			return nil, err
		}
		return p.mk(kNot, tok.pos, tyBool, x)
	}
	return p.cmp()
}

var cmpOps = map[string]kind{"<": kLT, "<=": kLE, ">": kGT, ">=": kGE, "==": kEQ, "!=": kNE}

func (p *parser) cmp() (*node, error) {
	l, err := p.sum()
	if err != nil {
		return nil, err
	}
	tok := p.peek()
	k, ok := cmpOps[tok.text]
	if !ok || tok.kind != "op" {
		return l, nil
	}
	p.next()
	r, err := p.sum()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind == "op" && isCmp(t.text) {
		return nil, &posError{t.pos, "comparisons do not chain: write a < b and b < c, or between(b, a, c)"}
	}
	if err := need(l, tyNum, "the left operand of "+tok.text); err != nil {
		return nil, err
	}
	if err := need(r, tyNum, "the right operand of "+tok.text); err != nil {
		return nil, err
	}
	return p.mk(k, tok.pos, tyBool, l, r)
}

func isCmp(s string) bool { _, ok := cmpOps[s]; return ok }

func (p *parser) sum() (*node, error) {
	return p.binary(p.prod, map[string]kind{"+": kAdd, "-": kSub}, tyNum, tyNum)
}

func (p *parser) prod() (*node, error) {
	n, err := p.binary(p.unary, map[string]kind{"*": kMul, "/": kDiv}, tyNum, tyNum)
	if err != nil {
		return nil, err
	}
	return n, checkDivisions(n)
}

// checkDivisions refuses a division whose divisor is a constant zero.
func checkDivisions(n *node) error {
	if n.k == kDiv {
		if v, ok := constValue(n.args[1]); ok && v == 0 {
			return &posError{n.pos, "division by zero"}
		}
	}
	return nil
}

func (p *parser) unary() (*node, error) {
	if p.isOp("-") {
		tok := p.next()
		if err := p.enter(tok.pos); err != nil {
			return nil, err
		}
		x, err := p.unary()
		p.depth--
		if err != nil {
			return nil, err
		}
		if err := need(x, tyNum, "the operand of -"); err != nil {
			return nil, err
		}
		return p.mk(kNeg, tok.pos, tyNum, x)
	}
	return p.primary()
}

type function struct {
	k      kind
	params []typ
	result typ
}

var functions = map[string]function{
	"abs":        {kAbs, []typ{tyNum}, tyNum},
	"min":        {kMin, []typ{tyNum, tyNum}, tyNum},
	"max":        {kMax, []typ{tyNum, tyNum}, tyNum},
	"between":    {kBetween, []typ{tyNum, tyNum, tyNum}, tyBool},
	"is_missing": {kMissing, []typ{tyNum}, tyBool},
	"distance_m": {kDistance, nil, tyNum},
	"dt_s":       {kDT, nil, tyNum},
	"age_s":      {kAge, nil, tyNum},
}

func (p *parser) primary() (*node, error) {
	tok := p.next()
	switch tok.kind {
	case "num":
		if len(tok.text) > maxLiteralLen {
			return nil, &posError{tok.pos, fmt.Sprintf("number literal longer than %d characters", maxLiteralLen)}
		}
		v, err := strconv.ParseFloat(tok.text, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, &posError{tok.pos, fmt.Sprintf("bad number %q", tok.text)}
		}
		if math.Abs(v) > MaxLiteral {
			return nil, &posError{tok.pos, fmt.Sprintf("number %s is out of range (at most %g)", tok.text, MaxLiteral)}
		}
		n, err := p.mk(kNum, tok.pos, tyNum)
		if err != nil {
			return nil, err
		}
		n.num = v
		return n, nil
	case "ident":
		if p.isOp("(") {
			return p.call(tok)
		}
		slot, ok := p.resolve(tok.text)
		if !ok {
			if _, fn := functions[tok.text]; fn {
				return nil, &posError{tok.pos, fmt.Sprintf("%s is a function: write %s(…)", tok.text, tok.text)}
			}
			return nil, &posError{tok.pos, fmt.Sprintf("unknown field %q (canonical fields: %s, now; or declare it in attrs)", tok.text, strings.Join(fieldNames[:], ", "))}
		}
		n, err := p.mk(kVar, tok.pos, tyNum)
		if err != nil {
			return nil, err
		}
		n.slot = slot
		return n, nil
	case "op":
		if tok.text == "(" {
			if err := p.enter(tok.pos); err != nil {
				return nil, err
			}
			n, err := p.or()
			p.depth--
			if err != nil {
				return nil, err
			}
			if t := p.next(); t.text != ")" || t.kind != "op" {
				return nil, &posError{t.pos, fmt.Sprintf("missing ) to close the ( at offset %d", tok.pos+1)}
			}
			return n, nil
		}
	case "eof":
		return nil, &posError{tok.pos, "unexpected end of the expression"}
	}
	return nil, &posError{tok.pos, fmt.Sprintf("unexpected %q", tok.text)}
}

func (p *parser) resolve(name string) (int, bool) {
	for i, f := range fieldNames {
		if f == name {
			return i, true
		}
	}
	if name == "now" {
		return slotNow, true
	}
	if s, ok := p.sc.attrs[name]; ok {
		return s, true
	}
	return 0, false
}

func (p *parser) call(name token) (*node, error) {
	f, ok := functions[name.text]
	if !ok {
		return nil, &posError{name.pos, fmt.Sprintf("unknown function %q", name.text)}
	}
	open := p.next() // (
	if err := p.enter(open.pos); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	var args []*node
	if !p.isOp(")") {
		for {
			a, err := p.or()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if !p.isOp(",") {
				break
			}
			p.next()
		}
	}
	if t := p.next(); t.text != ")" || t.kind != "op" {
		return nil, &posError{t.pos, fmt.Sprintf("missing ) to close %s(", name.text)}
	}
	if len(args) != len(f.params) {
		return nil, &posError{name.pos, fmt.Sprintf("%s takes %d arguments, got %d", name.text, len(f.params), len(args))}
	}
	for i, a := range args {
		if err := need(a, f.params[i], fmt.Sprintf("argument %d of %s", i+1, name.text)); err != nil {
			return nil, err
		}
	}
	return p.mk(f.k, name.pos, f.result, args...)
}

// constValue evaluates an expression made only of literals.
func constValue(n *node) (float64, bool) {
	switch n.k {
	case kNum:
		return n.num, true
	case kNeg:
		v, ok := constValue(n.args[0])
		return -v, ok
	case kAdd, kSub, kMul, kDiv, kMin, kMax:
		a, ok1 := constValue(n.args[0])
		b, ok2 := constValue(n.args[1])
		if !ok1 || !ok2 {
			return 0, false
		}
		return arith(n.k, a, b), true
	case kAbs:
		v, ok := constValue(n.args[0])
		return math.Abs(v), ok
	}
	return 0, false
}

func arith(k kind, a, b float64) float64 {
	switch k {
	case kAdd:
		return a + b
	case kSub:
		return a - b
	case kMul:
		return a * b
	case kDiv:
		return a / b
	case kMin:
		return wasmMin(a, b)
	case kMax:
		return wasmMax(a, b)
	}
	panic("not arithmetic")
}

// wasmMin and wasmMax are WebAssembly's f64.min and f64.max: NaN when
// either operand is NaN, and -0 < +0.
func wasmMin(a, b float64) float64 {
	if a != a || b != b {
		return math.NaN()
	}
	return math.Min(a, b)
}

func wasmMax(a, b float64) float64 {
	if a != a || b != b {
		return math.NaN()
	}
	return math.Max(a, b)
}

// uses marks the variable slots an expression reads.
func uses(n *node, mark func(slot int)) {
	switch n.k {
	case kVar:
		mark(n.slot)
	case kDistance:
		mark(fLat)
		mark(fLon)
		mark(fPrevLat)
		mark(fPrevLon)
	case kDT:
		mark(fTS)
		mark(fPrevTS)
	case kAge:
		mark(fTS)
		mark(slotNow)
	}
	for _, a := range n.args {
		uses(a, mark)
	}
}

// hasDistance reports whether the expression calls distance_m().
func hasDistance(n *node) bool {
	if n.k == kDistance {
		return true
	}
	for _, a := range n.args {
		if hasDistance(a) {
			return true
		}
	}
	return false
}
