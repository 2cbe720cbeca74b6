package checklang

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Suffix is how a check file's name ends in the rules folder.
const Suffix = ".check.hcl"

// Limits on a check beyond those of its expressions.
const (
	MaxFileBytes  = 256 << 10
	MaxAttrs      = 64
	MaxTests      = 200
	MaxReasonText = 512
)

// Dimensions and severities a check may declare (the rule ABI's).
var (
	Dimensions = []string{"validity", "completeness", "timeliness", "uniqueness", "consistency"}
	Severities = []string{"info", "warning", "critical"}
)

var (
	nameRe      = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	versionRe   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)
	attrRe      = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	placeholder = regexp.MustCompile(`\{([^{}]*)\}`)
)

// Error is a problem in a check's source, at a file position.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Module is a compiled check: a rule module of the public rule ABI.
type Module struct {
	Name string // the check's (and rule's) name
	Wasm []byte // the module binary
	Meta []byte // the fc_meta JSON
	mod  *module
}

// WAT renders the generated module as WebAssembly text.
func (m *Module) WAT() string { return m.mod.wat() }

// Check is one parsed check block.
type Check struct {
	Name       string
	Version    string
	Dimension  string
	Severity   string
	Attrs      []string
	When       string // applicability: false → not_applicable ("" = always)
	FailIf     string
	WarnIf     string // "" = no warn
	Reason     string // text of ReasonFail
	WarnReason string // text of ReasonWarn
	Tests      []Test

	prog *program
}

// Test is one self-test of a check (a test block).
type Test struct {
	Name  string             `json:"name"`
	NowMs int64              `json:"now_ms,omitempty"`
	In    map[string]float64 `json:"in"`
	Attrs map[string]float64 `json:"attrs,omitempty"`
	Want  string             `json:"want"`
	// Reason is derived from Want (ReasonFail, ReasonWarn or 0).
	Reason uint16 `json:"reason"`
}

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "check", LabelNames: []string{"name"}}}}

var checkSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "version"}, {Name: "dimension", Required: true}, {Name: "severity"},
		{Name: "attrs"}, {Name: "when"}, {Name: "fail_if", Required: true}, {Name: "warn_if"},
		{Name: "reason"}, {Name: "warn_reason"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "test", LabelNames: []string{"name"}}},
}

var testSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "in"}, {Name: "attrs"}, {Name: "now_ms"}, {Name: "want", Required: true}},
}

// diagErr turns HCL diagnostics into an error naming file, line and column.
func diagErr(diags hcl.Diagnostics) error {
	var errs []error
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		e := &Error{Msg: msg}
		if d.Subject != nil {
			e.File, e.Line, e.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// ParseFile parses every check block of a check file.
func ParseFile(filename string, src []byte) ([]*Check, error) {
	if len(src) > MaxFileBytes {
		return nil, &Error{File: filename, Line: 1, Column: 1, Msg: fmt.Sprintf("file is %d bytes, at most %d are allowed", len(src), MaxFileBytes)}
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diagErr(diags)
	}
	content, diags := f.Body.Content(fileSchema)
	if diags.HasErrors() {
		return nil, diagErr(diags)
	}
	return ParseBlocks(content.Blocks, src)
}

// ParseBlocks parses check blocks already split off a configuration (the
// config's rules block); src is the source file they come from (for exact
// expression positions; nil is allowed).
func ParseBlocks(blocks hcl.Blocks, src []byte) ([]*Check, error) {
	var out []*Check
	seen := map[string]bool{}
	for _, b := range blocks {
		c, err := parseCheck(b.Labels[0], b.LabelRanges[0], b.DefRange, b.Body, src)
		if err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, errAt(b.LabelRanges[0], fmt.Sprintf("check %q is defined twice", c.Name))
		}
		seen[c.Name] = true
		out = append(out, c)
	}
	return out, nil
}

// CompileFile parses a check file that holds exactly one check and compiles
// it.
func CompileFile(filename string, src []byte) (*Module, error) {
	cs, err := ParseFile(filename, src)
	if err != nil {
		return nil, err
	}
	if len(cs) != 1 {
		return nil, &Error{File: filename, Line: 1, Column: 1, Msg: fmt.Sprintf("a check file holds exactly one check block, found %d (put each check in its own file)", len(cs))}
	}
	return cs[0].Compile()
}

func errAt(r hcl.Range, msg string) *Error {
	return &Error{File: r.Filename, Line: r.Start.Line, Column: r.Start.Column, Msg: msg}
}

func stringAttr(attrs hcl.Attributes, name string) (string, *hcl.Attribute, error) {
	a, ok := attrs[name]
	if !ok {
		return "", nil, nil
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return "", a, diagErr(diags)
	}
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return "", a, errAt(a.Expr.Range(), name+" must be a string")
	}
	return v.AsString(), a, nil
}

// exprPos maps a byte offset inside a quoted expression string to a file
// position: exact for a one-line string without escapes, else the start of
// the attribute plus the offset.
func exprPos(a *hcl.Attribute, src []byte, value string, off int) (int, int, string) {
	r := a.Expr.Range()
	if src != nil && r.End.Byte <= len(src) && r.Start.Byte < r.End.Byte {
		raw := string(src[r.Start.Byte:r.End.Byte])
		if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && raw[1:len(raw)-1] == value && !strings.Contains(value, "\n") {
			return r.Start.Line, r.Start.Column + 1 + off, ""
		}
	}
	return r.Start.Line, r.Start.Column, fmt.Sprintf(" (at offset %d of the expression)", off)
}

// ParseBody parses the body of one check block decoded elsewhere (the
// config's rules block, through gohcl's remain body): name is the block's
// label, nameRange and defRange its positions, src the source file (for
// exact expression positions; nil is allowed).
func ParseBody(name string, nameRange, defRange hcl.Range, body hcl.Body, src []byte) (*Check, error) {
	return parseCheck(name, nameRange, defRange, body, src)
}

func parseCheck(name string, nameRange, defRange hcl.Range, body hcl.Body, src []byte) (*Check, error) {
	content, diags := body.Content(checkSchema)
	if diags.HasErrors() {
		return nil, diagErr(diags)
	}
	c := &Check{Name: name, Version: "1.0.0", Severity: "warning"}
	if !nameRe.MatchString(c.Name) || len(c.Name) > 64 {
		return nil, errAt(nameRange, fmt.Sprintf("check name %q must be lowercase dotted words ([a-z0-9_]+(.[a-z0-9_]+)*), at most 64 bytes", c.Name))
	}
	at := content.Attributes
	str := func(name string, dst *string) error {
		v, a, err := stringAttr(at, name)
		if err != nil {
			return err
		}
		if a != nil {
			*dst = v
		}
		return nil
	}
	for _, s := range []struct {
		name string
		dst  *string
	}{{"version", &c.Version}, {"dimension", &c.Dimension}, {"severity", &c.Severity},
		{"when", &c.When}, {"fail_if", &c.FailIf}, {"warn_if", &c.WarnIf},
		{"reason", &c.Reason}, {"warn_reason", &c.WarnReason}} {
		if err := str(s.name, s.dst); err != nil {
			return nil, err
		}
	}
	rng := func(name string) hcl.Range {
		if a, ok := at[name]; ok {
			return a.Expr.Range()
		}
		return defRange
	}
	if !versionRe.MatchString(c.Version) {
		return nil, errAt(rng("version"), fmt.Sprintf("version %q is not a semantic version (1.0.0)", c.Version))
	}
	if !slices.Contains(Dimensions, c.Dimension) {
		return nil, errAt(rng("dimension"), fmt.Sprintf("dimension %q must be one of %s", c.Dimension, strings.Join(Dimensions, ", ")))
	}
	if !slices.Contains(Severities, c.Severity) {
		return nil, errAt(rng("severity"), fmt.Sprintf("severity %q must be one of %s", c.Severity, strings.Join(Severities, ", ")))
	}
	if a, ok := at["attrs"]; ok {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return nil, diagErr(diags)
		}
		if v.IsNull() || !(v.Type().IsListType() || v.Type().IsTupleType()) {
			return nil, errAt(a.Expr.Range(), "attrs must be a list of attribute names")
		}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			if e.IsNull() || e.Type() != cty.String {
				return nil, errAt(a.Expr.Range(), "attrs must be a list of attribute names")
			}
			name := e.AsString()
			switch {
			case !attrRe.MatchString(name):
				return nil, errAt(a.Expr.Range(), fmt.Sprintf("attribute name %q must match [a-z_][a-z0-9_]*", name))
			case slices.Contains(fieldNames[:], name) || name == "now" || name == "and" || name == "or" || name == "not":
				return nil, errAt(a.Expr.Range(), fmt.Sprintf("attribute name %q is a field or keyword", name))
			case slices.Contains(c.Attrs, name):
				return nil, errAt(a.Expr.Range(), fmt.Sprintf("attribute %q is declared twice", name))
			}
			if _, fn := functions[name]; fn {
				return nil, errAt(a.Expr.Range(), fmt.Sprintf("attribute name %q is a function", name))
			}
			c.Attrs = append(c.Attrs, name)
		}
		if len(c.Attrs) > MaxAttrs {
			return nil, errAt(a.Expr.Range(), fmt.Sprintf("at most %d attributes", MaxAttrs))
		}
	}
	sc := &scope{attrs: map[string]int{}}
	for i, a := range c.Attrs {
		sc.attrs[a] = slotNow + 1 + i
	}
	p := &program{attrs: c.Attrs}
	parse := func(name, text string, dst **node) error {
		if _, ok := at[name]; !ok {
			return nil
		}
		n, err := parseExpr(text, sc, tyBool)
		if err != nil {
			var pe *posError
			if errors.As(err, &pe) {
				line, col, suffix := exprPos(at[name], src, text, pe.pos)
				return &Error{File: at[name].Expr.Range().Filename, Line: line, Column: col, Msg: name + ": " + pe.msg + suffix}
			}
			return err
		}
		*dst = n
		return nil
	}
	if err := parse("when", c.When, &p.when); err != nil {
		return nil, err
	}
	if err := parse("fail_if", c.FailIf, &p.fail); err != nil {
		return nil, err
	}
	if err := parse("warn_if", c.WarnIf, &p.warn); err != nil {
		return nil, err
	}
	if c.Reason == "" {
		c.Reason = defaultReason("fail_if: " + c.FailIf)
	}
	if c.WarnReason == "" {
		if _, ok := at["reason"]; ok {
			c.WarnReason = c.Reason
		} else {
			c.WarnReason = defaultReason("warn_if: " + c.WarnIf)
		}
	}
	used := map[int]bool{}
	for _, r := range []struct{ name, text string }{{"reason", c.Reason}, {"warn_reason", c.WarnReason}} {
		if len(r.text) > MaxReasonText {
			return nil, errAt(rng(r.name), fmt.Sprintf("%s is longer than %d bytes", r.name, MaxReasonText))
		}
		for _, m := range placeholder.FindAllStringSubmatch(r.text, -1) {
			slot, ok := (&parser{sc: sc}).resolve(m[1])
			if !ok || slot == slotNow {
				return nil, errAt(rng(r.name), fmt.Sprintf("%s: placeholder {%s} names no field or declared attribute", r.name, m[1]))
			}
			used[slot] = true // the host fills it from the column the rule receives
		}
	}
	for _, e := range []*node{p.when, p.fail, p.warn} {
		if e != nil {
			uses(e, func(s int) { used[s] = true })
		}
	}
	for i := range numField {
		if used[i] {
			p.fields = append(p.fields, i)
		}
	}
	p.usesNow = used[slotNow]
	if len(content.Blocks) > MaxTests {
		return nil, errAt(content.Blocks[MaxTests].DefRange, fmt.Sprintf("at most %d test blocks", MaxTests))
	}
	for _, tb := range content.Blocks {
		t, err := parseTest(tb, c, p)
		if err != nil {
			return nil, err
		}
		c.Tests = append(c.Tests, t)
	}
	meta, err := c.metaJSON(p)
	if err != nil {
		return nil, err
	}
	p.meta = meta
	c.prog = p
	return c, nil
}

// defaultReason is the expression as the reason text, cut to a readable
// length, without braces (they are placeholders in a reason).
func defaultReason(s string) string {
	s = strings.Join(strings.Fields(strings.NewReplacer("{", "(", "}", ")").Replace(s)), " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func numberMap(a *hcl.Attribute, what string) (map[string]float64, error) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return nil, diagErr(diags)
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		return nil, errAt(a.Expr.Range(), what+" must be an object of numbers, e.g. { speed = 250 }")
	}
	out := map[string]float64{}
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if e.IsNull() || e.Type() != cty.Number {
			return nil, errAt(a.Expr.Range(), fmt.Sprintf("%s.%s must be a number", what, k.AsString()))
		}
		f, _ := e.AsBigFloat().Float64()
		if math.IsInf(f, 0) {
			return nil, errAt(a.Expr.Range(), fmt.Sprintf("%s.%s is out of range", what, k.AsString()))
		}
		out[k.AsString()] = f
	}
	return out, nil
}

var wants = map[string]uint16{"pass": 0, "warn": ReasonWarn, "fail": ReasonFail, "not_applicable": 0}

func parseTest(b *hcl.Block, c *Check, p *program) (Test, error) {
	content, diags := b.Body.Content(testSchema)
	if diags.HasErrors() {
		return Test{}, diagErr(diags)
	}
	t := Test{Name: b.Labels[0], In: map[string]float64{}}
	at := content.Attributes
	var err error
	if a, ok := at["in"]; ok {
		if t.In, err = numberMap(a, "in"); err != nil {
			return t, err
		}
		for k := range t.In {
			if !slices.Contains(fieldNames[:], k) {
				return t, errAt(a.Expr.Range(), fmt.Sprintf("in: unknown field %q", k))
			}
			i := slices.Index(fieldNames[:], k)
			if !slices.Contains(p.fields, i) {
				return t, errAt(a.Expr.Range(), fmt.Sprintf("in: the check does not read %q", k))
			}
		}
	}
	if a, ok := at["attrs"]; ok {
		if t.Attrs, err = numberMap(a, "attrs"); err != nil {
			return t, err
		}
		for k := range t.Attrs {
			if !slices.Contains(c.Attrs, k) {
				return t, errAt(a.Expr.Range(), fmt.Sprintf("attrs: %q is not declared in the check's attrs", k))
			}
		}
	}
	if a, ok := at["now_ms"]; ok {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			return t, diagErr(diags)
		}
		if v.IsNull() || v.Type() != cty.Number {
			return t, errAt(a.Expr.Range(), "now_ms must be a number (Unix ms)")
		}
		bf := v.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 {
			return t, errAt(a.Expr.Range(), "now_ms must be an integer (Unix ms)")
		}
		t.NowMs = n
	}
	w, a, err := stringAttr(at, "want")
	if err != nil {
		return t, err
	}
	reason, ok := wants[w]
	if !ok {
		return t, errAt(a.Expr.Range(), fmt.Sprintf("want %q must be pass, warn, fail or not_applicable", w))
	}
	if w == "warn" && p.warn == nil {
		return t, errAt(a.Expr.Range(), "want warn, but the check has no warn_if")
	}
	if w == "not_applicable" && p.when == nil {
		return t, errAt(a.Expr.Range(), "want not_applicable, but the check has no when")
	}
	t.Want, t.Reason = w, reason
	return t, nil
}

func (c *Check) metaJSON(p *program) ([]byte, error) {
	fields := make([]string, 0, len(p.fields))
	for _, i := range p.fields {
		fields = append(fields, fieldNames[i])
	}
	reasons := map[string]string{strconv.Itoa(ReasonFail): c.Reason}
	if p.warn != nil {
		reasons[strconv.Itoa(ReasonWarn)] = c.WarnReason
	}
	attrs := c.Attrs
	if attrs == nil {
		attrs = []string{}
	}
	tests := c.Tests
	m := struct {
		Name      string            `json:"name"`
		Version   string            `json:"version"`
		Dimension string            `json:"dimension"`
		Severity  string            `json:"severity"`
		Fields    []string          `json:"fields"`
		Attrs     []string          `json:"attrs"`
		Reasons   map[string]string `json:"reasons"`
		Tests     []Test            `json:"tests,omitempty"`
	}{c.Name, c.Version, c.Dimension, c.Severity, fields, attrs, reasons, tests}
	return json.Marshal(m)
}

// Compile generates the check's rule module.
func (c *Check) Compile() (*Module, error) {
	if c.prog == nil {
		return nil, errors.New("check was not parsed")
	}
	mod := generate(c.prog)
	return &Module{Name: c.Name, Wasm: mod.encode(), Meta: c.prog.meta, mod: mod}, nil
}

// Fields returns the canonical fields the check reads, in index order.
func (c *Check) Fields() []string {
	var out []string
	for _, i := range c.prog.fields {
		out = append(out, fieldNames[i])
	}
	return out
}

// Eval is the reference semantics of the check in Go (the interpreter the
// generated code is tested against): values by canonical field name (times
// in Unix ms; absent = NaN or missing from the map), attrs in declaration
// order, now in Unix ms. It returns the verdict status (0 pass, 1 warn, 2
// fail, 3 not applicable) and reason code.
func (c *Check) Eval(fields map[string]float64, attrs []float64, nowMs float64) (uint8, uint16) {
	v := make([]float64, slotNow+1+len(c.Attrs))
	for i := range v {
		v[i] = math.NaN()
	}
	for i, name := range fieldNames {
		if x, ok := fields[name]; ok {
			v[i] = x
		}
	}
	v[slotNow] = nowMs
	for i := range c.Attrs {
		if i < len(attrs) {
			v[slotNow+1+i] = attrs[i]
		}
	}
	p := c.prog
	if p.when != nil {
		if _, ok := eval(p.when, v); !ok {
			return statusNA, 0
		}
	}
	if _, ok := eval(p.fail, v); ok {
		return statusFail, ReasonFail
	}
	if p.warn != nil {
		if _, ok := eval(p.warn, v); ok {
			return statusWarn, ReasonWarn
		}
	}
	return 0, 0
}
