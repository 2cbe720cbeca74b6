package wasmrule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"github.com/fleetcore/fleetcore/signal"
)

// Dimensions and severities a rule may declare.
var (
	Dimensions = []string{"validity", "completeness", "timeliness", "uniqueness", "consistency"}
	Severities = []string{"info", "warning", "critical"}
)

// Limits on metadata.
const (
	MaxMetaBytes = 1 << 20
	MaxAttrs     = 64
	MaxTests     = 1000
)

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)
	versionRe = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)
)

// Meta is a rule's validated metadata (ABI.md "Metadata").
type Meta struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Dimension string            `json:"dimension"`
	Severity  string            `json:"severity"`
	Fields    []string          `json:"fields"`
	Attrs     []string          `json:"attrs"`
	Reasons   map[uint16]string `json:"-"`
	Tests     []TestCase        `json:"tests,omitempty"`

	fields []signal.Field // declared fields in index order
	mask   uint64
}

// TestCase is one self-test: a single signal, the host's clock and the
// expected verdict. In JSON (metadata "tests" or a <rule>.tests.jsonl line):
//
//	{"name": "lat 90 passes", "now_ms": 0, "in": {"lat": 90, "lon": 0},
//	 "attrs": {"ignition": 1}, "want": "pass", "reason": 0}
//
// "in" maps canonical field names (including prev_*) to numbers, times in
// Unix milliseconds; a field left out is absent. "now_ms" defaults to 0.
// "want" is pass, warn, fail or not_applicable; "reason" must match for
// warn and fail.
type TestCase struct {
	Name   string             `json:"name"`
	NowMs  int64              `json:"now_ms,omitempty"`
	In     map[string]float64 `json:"in"`
	Attrs  map[string]float64 `json:"attrs,omitempty"`
	Want   string             `json:"want"`
	Reason uint16             `json:"reason"`
}

// Mask is the batch header's field mask: the declared fields' bits.
func (m *Meta) Mask() uint64 { return m.mask }

// FieldIndexes returns the declared fields in index (column) order.
func (m *Meta) FieldIndexes() []signal.Field { return slices.Clone(m.fields) }

// ReasonText returns the text of a reason code ("" when unknown or 0).
func (m *Meta) ReasonText(code uint16) string { return m.Reasons[code] }

type metaJSON struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Dimension string            `json:"dimension"`
	Severity  string            `json:"severity"`
	Fields    []string          `json:"fields"`
	Attrs     []string          `json:"attrs"`
	Reasons   map[string]string `json:"reasons"`
	Tests     []TestCase        `json:"tests,omitempty"`
}

// MarshalJSON renders the metadata in its ABI shape.
func (m Meta) MarshalJSON() ([]byte, error) {
	j := metaJSON{Name: m.Name, Version: m.Version, Dimension: m.Dimension, Severity: m.Severity,
		Fields: m.Fields, Attrs: m.Attrs, Reasons: map[string]string{}, Tests: m.Tests}
	if j.Fields == nil {
		j.Fields = []string{}
	}
	if j.Attrs == nil {
		j.Attrs = []string{}
	}
	for k, v := range m.Reasons {
		j.Reasons[strconv.Itoa(int(k))] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(j); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ParseMeta decodes and validates metadata JSON. Unknown keys are errors.
func ParseMeta(b []byte) (Meta, error) {
	if len(b) > MaxMetaBytes {
		return Meta{}, fmt.Errorf("metadata is %d bytes, limit %d", len(b), MaxMetaBytes)
	}
	var j metaJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Meta{}, fmt.Errorf("decoding metadata JSON: %w", err)
	}
	if dec.More() {
		return Meta{}, fmt.Errorf("decoding metadata JSON: trailing data")
	}
	m := Meta{Name: j.Name, Version: j.Version, Dimension: j.Dimension, Severity: j.Severity,
		Fields: j.Fields, Attrs: j.Attrs, Tests: j.Tests, Reasons: make(map[uint16]string, len(j.Reasons))}
	for k, v := range j.Reasons {
		c, err := strconv.ParseUint(k, 10, 16)
		if err != nil || c == 0 || strconv.FormatUint(c, 10) != k {
			return Meta{}, fmt.Errorf("reason code %q: want an integer 1..65535", k)
		}
		m.Reasons[uint16(c)] = v
	}
	if err := m.validate(); err != nil {
		return Meta{}, err
	}
	return m, nil
}

func (m *Meta) validate() error {
	if !nameRe.MatchString(m.Name) || len(m.Name) > 64 {
		return fmt.Errorf("name %q: want lowercase dotted words like gps.range (at most 64 bytes)", m.Name)
	}
	if !versionRe.MatchString(m.Version) {
		return fmt.Errorf("version %q: want a semantic version like 1.0.0", m.Version)
	}
	if !slices.Contains(Dimensions, m.Dimension) {
		return fmt.Errorf("dimension %q: want one of %v", m.Dimension, Dimensions)
	}
	if !slices.Contains(Severities, m.Severity) {
		return fmt.Errorf("severity %q: want one of %v", m.Severity, Severities)
	}
	m.fields, m.mask = nil, 0
	for _, name := range m.Fields {
		f, ok := signal.FieldByName(name)
		if !ok {
			return fmt.Errorf("field %q is not a canonical field", name)
		}
		if m.mask&(1<<f) != 0 {
			return fmt.Errorf("field %q declared twice", name)
		}
		m.mask |= 1 << f
		m.fields = append(m.fields, f)
	}
	sort.Slice(m.fields, func(i, j int) bool { return m.fields[i] < m.fields[j] })
	if len(m.Attrs) > MaxAttrs {
		return fmt.Errorf("%d attrs declared, limit %d", len(m.Attrs), MaxAttrs)
	}
	for i, a := range m.Attrs {
		if a == "" || slices.Contains(m.Attrs[:i], a) {
			return fmt.Errorf("attr %q is empty or declared twice", a)
		}
	}
	for c, text := range m.Reasons {
		if text == "" {
			return fmt.Errorf("reason %d has no text", c)
		}
	}
	if len(m.Tests) > MaxTests {
		return fmt.Errorf("%d tests, limit %d", len(m.Tests), MaxTests)
	}
	for i := range m.Tests {
		if err := m.validateTest(&m.Tests[i]); err != nil {
			return fmt.Errorf("test %d %q: %w", i, m.Tests[i].Name, err)
		}
	}
	return nil
}

func (m *Meta) validateTest(t *TestCase) error {
	for k, v := range t.In {
		if _, ok := signal.FieldByName(k); !ok {
			return fmt.Errorf("input %q is not a canonical field", k)
		}
		if math.IsNaN(v) {
			return fmt.Errorf("input %q is NaN: leave it out instead", k)
		}
	}
	for k := range t.Attrs {
		if !slices.Contains(m.Attrs, k) {
			return fmt.Errorf("attr %q is not declared in attrs", k)
		}
	}
	st, ok := ParseStatus(t.Want)
	if !ok {
		return fmt.Errorf("want %q: want pass, warn, fail or not_applicable", t.Want)
	}
	if (st == StatusWarn || st == StatusFail) && m.Reasons[t.Reason] == "" {
		return fmt.Errorf("reason %d is not declared in reasons", t.Reason)
	}
	return nil
}
