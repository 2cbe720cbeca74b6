package store

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// attrsJSON encodes a signal's attributes as the JSON text of the jsonb
// column. It is the hot path of every batch, so common values (integers,
// floats, booleans, plain ASCII strings) are appended by hand and only
// unusual strings go through encoding/json. Values JSON cannot hold (NaN,
// ±Inf) become null, and NUL characters (which Postgres refuses in jsonb)
// become U+FFFD, so no attribute can make a whole batch fail.
func attrsJSON(m map[string]any) []byte {
	return appendAttrsJSON(make([]byte, 0, 24*len(m)+2), m)
}

// appendAttrsJSON appends attrsJSON(m) to b.
func appendAttrsJSON(b []byte, m map[string]any) []byte {
	b = append(b, '{')
	first := true
	for k, v := range m {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONValue(b, v)
	}
	return append(b, '}')
}

func appendJSONValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case string:
		return appendJSONString(b, x)
	case nil:
		return append(b, "null"...)
	default:
		j, err := json.Marshal(x)
		if err != nil {
			return appendJSONString(b, "unencodable value")
		}
		return append(b, j...)
	}
}

func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	j, _ := json.Marshal(s) // strings always encode; invalid UTF-8 becomes U+FFFD
	return append(b, j...)
}
