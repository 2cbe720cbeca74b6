package wasmrule

import (
	"errors"
	"fmt"
)

// Kind says why a rule module was refused or a batch was not evaluated.
type Kind int

// Error kinds.
const (
	KindInvalid    Kind = iota + 1 // the module or its metadata breaks the ABI (load time)
	KindTrap                       // the guest trapped or exited
	KindTimeout                    // the batch ran past the time budget
	KindMemory                     // the guest ran out of its memory limit
	KindBadReturn                  // fc_check returned a negative error code or an impossible count
	KindBadVerdict                 // a verdict has an unknown status or an undeclared reason
	KindDisabled                   // the rule is disabled after repeated failures
	KindClosed                     // the rule was closed (replaced or removed)
	KindCanceled                   // the caller's context ended; not the rule's fault
)

var kindNames = map[Kind]string{
	KindInvalid: "invalid", KindTrap: "trap", KindTimeout: "timeout", KindMemory: "memory",
	KindBadReturn: "bad_return", KindBadVerdict: "bad_verdict", KindDisabled: "disabled",
	KindClosed: "closed", KindCanceled: "canceled",
}

// String returns the kind's snake_case name.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Sentinel errors, one per kind: errors.Is(err, wasmrule.ErrTimeout).
var (
	ErrInvalidModule = errors.New("invalid rule module")
	ErrTrap          = errors.New("rule trapped")
	ErrTimeout       = errors.New("rule exceeded its time budget")
	ErrMemory        = errors.New("rule exceeded its memory limit")
	ErrBadReturn     = errors.New("rule returned an error or an impossible count")
	ErrBadVerdict    = errors.New("rule wrote an invalid verdict")
	ErrDisabled      = errors.New("rule disabled after repeated failures")
	ErrClosed        = errors.New("rule closed")
	ErrCanceled      = errors.New("rule evaluation canceled")
)

var kindErrs = map[Kind]error{
	KindInvalid: ErrInvalidModule, KindTrap: ErrTrap, KindTimeout: ErrTimeout, KindMemory: ErrMemory,
	KindBadReturn: ErrBadReturn, KindBadVerdict: ErrBadVerdict, KindDisabled: ErrDisabled,
	KindClosed: ErrClosed, KindCanceled: ErrCanceled,
}

// Error is a refused module or a batch that was not evaluated.
type Error struct {
	Rule string // rule name, or the file when the name is not known yet
	Kind Kind
	Err  error // detail
}

func (e *Error) Error() string {
	name := e.Rule
	if name == "" {
		name = "rule"
	}
	if e.Err == nil {
		return fmt.Sprintf("%s: %v", name, kindErrs[e.Kind])
	}
	return fmt.Sprintf("%s: %v: %v", name, kindErrs[e.Kind], e.Err)
}

// Unwrap exposes the kind's sentinel and the detail.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{kindErrs[e.Kind]}
	}
	return []error{kindErrs[e.Kind], e.Err}
}

// KindOf returns the kind of a wasmrule error, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// NotEvaluated reports whether err means that signals were not evaluated
// (as opposed to a programming or I/O error): every batch error of this
// package is one. Such signals must not be counted as failing.
func NotEvaluated(err error) bool {
	k := KindOf(err)
	return k != 0 && k != KindInvalid
}

func newErr(rule string, k Kind, format string, args ...any) *Error {
	return &Error{Rule: rule, Kind: k, Err: fmt.Errorf(format, args...)}
}
