package wasmrule

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var placeholderRe = regexp.MustCompile(`\{([a-z_][a-z0-9_]*)\}`)

// Reason is the text of a verdict's reason code for one input: the
// metadata's text with each {name} placeholder that names a declared field
// or attribute replaced by the value the rule saw (times in RFC 3339,
// "missing" when absent). Other braces are kept as written. The text is a
// pure function of the metadata and the input, so replays reproduce it.
func (m *Meta) Reason(code uint16, in *Input) string {
	text := m.Reasons[code]
	if !strings.Contains(text, "{") {
		return text
	}
	return placeholderRe.ReplaceAllStringFunc(text, func(ph string) string {
		name := ph[1 : len(ph)-1]
		for _, f := range m.fields {
			if f.String() != name {
				continue
			}
			bits := fieldBits(in, f)
			if f.IsTime() {
				ms := int64(bits)
				if ms == math.MinInt64 {
					return "missing"
				}
				return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
			}
			return formatValue(math.Float64frombits(bits))
		}
		for _, a := range m.Attrs {
			if a == name {
				v := math.NaN()
				if x, ok := in.Signal.Attrs[a]; ok {
					v = AttrValue(x)
				}
				return formatValue(v)
			}
		}
		return ph
	})
}

func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "missing"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
