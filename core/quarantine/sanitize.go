package quarantine

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Caps on the text columns of a quarantine row, in bytes after escaping.
// A text that was longer is cut at a character boundary and ends in "…".
const (
	MaxDeviceIDBytes   = 256
	MaxReasonBytes     = 1024
	MaxRemoteAddrBytes = 128
	MaxListenerBytes   = 128
	MaxProtocolBytes   = 64
)

// ellipsis marks a text cut at its cap.
const ellipsis = "…"

// Sanitize returns s as text that Postgres accepts in any text column:
// each byte that is not part of valid UTF-8 becomes \xNN, NUL becomes
// \x00, and the result is at most maxBytes long (cut at a character
// boundary, ending in "…"). Valid text without NUL that fits is returned
// unchanged, so only odd input is rewritten. A backslash is kept as it
// is: the escapes are for reading, the raw bytes are in the row's raw
// column.
func Sanitize(s string, maxBytes int) string {
	if len(s) <= maxBytes && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), maxBytes))
	limit := maxBytes - len(ellipsis)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+n]
		if r == 0 || (r == utf8.RuneError && n == 1) {
			piece = `\x` + hex2(s[i])
		}
		// Keep room for the ellipsis unless the rest fits whole.
		if b.Len()+len(piece) > limit && !restFits(b.Len(), s[i:], maxBytes) {
			if maxBytes >= len(ellipsis) {
				b.WriteString(ellipsis)
			}
			return b.String()
		}
		b.WriteString(piece)
		i += n
	}
	return b.String()
}

// restFits reports whether the escaped rest of s still fits after have
// bytes.
func restFits(have int, rest string, maxBytes int) bool {
	n := have
	for i := 0; i < len(rest); {
		r, w := utf8.DecodeRuneInString(rest[i:])
		if r == 0 || (r == utf8.RuneError && w == 1) {
			n += 4
		} else {
			n += w
		}
		if n > maxBytes {
			return false
		}
		i += w
	}
	return true
}

func hex2(c byte) string {
	h := strconv.FormatUint(uint64(c), 16)
	if len(h) == 1 {
		return "0" + h
	}
	return h
}
