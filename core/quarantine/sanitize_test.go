package quarantine_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fleetcore/fleetcore/core/quarantine"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain text unchanged", "356307042441021", 256, "356307042441021"},
		{"unicode unchanged", "žiedas °C", 256, "žiedas °C"},
		{"NUL escaped", "d\x00x", 256, `d\x00x`},
		{"invalid UTF-8 escaped", "a\xff\xfeb", 256, `a\xff\xfeb`},
		{"truncated UTF-8 escaped", "ž\xc5", 256, `ž\xc5`},
		{"surrogate half escaped", "\xed\xa0\x80", 256, `\xed\xa0\x80`},
		{"long text cut with an ellipsis", strings.Repeat("a", 300), 10, "aaaaaaa…"},
		{"exactly the cap", "aaaaaaaaaa", 10, "aaaaaaaaaa"},
		{"cut inside an escape keeps it whole", "aaaaa\x00\x00", 10, "aaaaa…"},
		{"cut at a character boundary", "aaaaaaažž", 10, "aaaaaaa…"},
		{"escape that fits at the end", "aaaaaa\x00", 10, `aaaaaa\x00`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := quarantine.Sanitize(tc.in, tc.max)
			if got != tc.want {
				t.Fatalf("Sanitize(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > tc.max {
				t.Fatalf("%q is not storable text within %d bytes", got, tc.max)
			}
		})
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add("d\x00\xff", 16)
	f.Add(strings.Repeat("ž", 100), 7)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 3 || max > 1<<16 {
			return
		}
		got := quarantine.Sanitize(s, max)
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > max {
			t.Fatalf("Sanitize(%q, %d) = %q: not storable text within the cap", s, max, got)
		}
		if len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 && got != s {
			t.Fatalf("Sanitize changed storable text %q to %q", s, got)
		}
	})
}

func TestSource(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.1.2.3:40411", "10.1.2.3"},
		{"10.1.2.3", "10.1.2.3"},
		{"[2001:db8:1:2:aaaa::1]:5027", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:6000", "2001:db8:1:2::/64"},
		{"[::ffff:10.1.2.3]:1", "10.1.2.3"},
		{"pipe", "pipe"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := quarantine.Source(tc.in); got != tc.want {
				t.Fatalf("Source(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
