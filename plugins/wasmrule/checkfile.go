package wasmrule

import (
	"fmt"
	"strings"

	"github.com/fleetcore/fleetcore/plugins/checklang"
)

// CheckSuffix names a declarative check file of the rules folder
// (plugins/checklang): it is compiled to a rule module when loaded.
const CheckSuffix = checklang.Suffix

// IsRuleFile reports whether a file name is a rule: NAME.wasm or
// NAME.check.hcl.
func IsRuleFile(name string) bool {
	return strings.HasSuffix(name, ".wasm") || strings.HasSuffix(name, CheckSuffix)
}

// ruleBase is the file name without its rule suffix.
func ruleBase(name string) string {
	if strings.HasSuffix(name, CheckSuffix) {
		return strings.TrimSuffix(name, CheckSuffix)
	}
	return strings.TrimSuffix(name, ".wasm")
}

// ModuleBytes returns the rule module of a rule file's contents: a .wasm
// file as it is, a check file compiled by checklang (errors name the file,
// line and column).
func ModuleBytes(path string, src []byte) ([]byte, error) {
	if !strings.HasSuffix(path, CheckSuffix) {
		return src, nil
	}
	m, err := checklang.CompileFile(path, src)
	if err != nil {
		return nil, fmt.Errorf("compiling check: %w", err)
	}
	return m.Wasm, nil
}
