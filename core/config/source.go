package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// listenerSource is where a listener block and its keys are in the file.
type listenerSource struct {
	block   string            // file:line of the block
	attrs   map[string]string // attribute -> file:line
	options map[string]string // option key -> file:line
}

// Where returns the file:line of the listener's attribute attr, else of
// its block, else the config file's name (a listener built in code: "").
func (l *Listener) Where(attr string) string {
	if w, ok := l.src.attrs[attr]; ok {
		return w
	}
	return l.src.block
}

// OptionWhere returns the file:line of the listener's option key, else of
// its options attribute (see Where).
func (l *Listener) OptionWhere(key string) string {
	if w, ok := l.src.options[key]; ok {
		return w
	}
	return l.Where("options")
}

func at(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

// recordSources notes the file:line of every attribute (as "attr" and
// "block.attr" keys in c.sources) and of every listener, its attributes
// and its option keys.
func (c *Config) recordSources(body hcl.Body) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return
	}
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	for name, a := range sb.Attributes {
		c.sources[name] = at(a.SrcRange)
	}
	li := 0
	for _, b := range sb.Blocks {
		if b.Type != "listener" {
			c.sources[b.Type] = at(b.DefRange())
			for name, a := range b.Body.Attributes {
				c.sources[b.Type+"."+name] = at(a.SrcRange)
			}
			continue
		}
		if li >= len(c.Listeners) {
			continue
		}
		src := listenerSource{block: at(b.DefRange()), attrs: map[string]string{}, options: map[string]string{}}
		for name, a := range b.Body.Attributes {
			src.attrs[name] = at(a.SrcRange)
		}
		if a, ok := b.Body.Attributes["options"]; ok {
			if obj, ok := a.Expr.(*hclsyntax.ObjectConsExpr); ok {
				for _, item := range obj.Items {
					if k, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && k.Type().FriendlyName() == "string" {
						src.options[k.AsString()] = at(item.KeyExpr.Range())
					}
				}
			}
		}
		c.Listeners[li].src = src
		li++
	}
}

// problemKey is the key a Validate message starts with ("rules.interval: …").
var problemKey = regexp.MustCompile(`^([a-z_]+(?:\.[a-z_]+)?)[:\[ ]`)

// where returns the file:line of key when the file set it, else the file.
func (c *Config) where(key string) string {
	if w, ok := c.sources[key]; ok {
		return w
	}
	if block, _, ok := cutDot(key); ok {
		if w, ok := c.sources[block]; ok {
			return w
		}
	}
	if c.File == "" {
		return "defaults"
	}
	return c.File
}

func cutDot(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Sort orders the problems by file and line (stably: problems on one line
// keep their order), so they read top to bottom like the file.
func (e *Error) Sort() {
	type pos struct {
		file string
		line int
	}
	at := func(p string) pos {
		loc, _, _ := strings.Cut(p, ": ")
		i := strings.LastIndex(loc, ":")
		if i < 0 {
			return pos{loc, 0}
		}
		n, err := strconv.Atoi(loc[i+1:])
		if err != nil {
			return pos{loc, 0}
		}
		return pos{loc[:i], n}
	}
	slices.SortStableFunc(e.Problems, func(a, b string) int {
		pa, pb := at(a), at(b)
		if c := strings.Compare(pa.file, pb.file); c != 0 {
			return c
		}
		return pa.line - pb.line
	})
}
