package wasmdecoder

import (
	"errors"
	"fmt"
)

// Kind says why a module was refused or a call failed.
type Kind int

// Error kinds.
const (
	KindInvalid  Kind = iota + 1 // the module, its metadata or a self-test breaks the ABI (load time)
	KindTrap                     // the guest trapped or exited during a call
	KindTimeout                  // a call ran past the time budget
	KindMemory                   // the guest ran out of its memory limit
	KindABI                      // the guest broke the ABI in a call: bad return, bad output layout, a cap
	KindDisabled                 // the module disabled itself after repeated failures
	KindClosed                   // the module was closed (replaced or removed)
)

var kindNames = map[Kind]string{
	KindInvalid: "invalid", KindTrap: "trap", KindTimeout: "timeout", KindMemory: "memory",
	KindABI: "abi", KindDisabled: "disabled", KindClosed: "closed",
}

// String returns the kind's snake_case name.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// guest reports whether the kind is a fault of the guest during a call:
// what counts towards MaxFailures and wraps ErrGuest.
func (k Kind) guest() bool {
	return k == KindTrap || k == KindTimeout || k == KindMemory || k == KindABI
}

// ErrGuest is wrapped by every call error that is the guest's fault (a
// trap, a timeout, memory exhaustion, an ABI violation): the frame is
// refused like a malformed one (quarantined with the reason, the connection
// closed) and the failure counts towards the module's MaxFailures.
var ErrGuest = errors.New("decoder guest failed")

// Sentinel errors, one per kind: errors.Is(err, wasmdecoder.ErrTimeout).
var (
	ErrInvalidModule = errors.New("invalid decoder module")
	ErrTrap          = errors.New("decoder trapped")
	ErrTimeout       = errors.New("decoder exceeded its time budget")
	ErrMemory        = errors.New("decoder exceeded its memory limit")
	ErrABI           = errors.New("decoder broke the ABI")
	ErrDisabled      = errors.New("decoder disabled after repeated failures")
	ErrClosed        = errors.New("decoder closed")
	// ErrStateVersion is Session.Switch's refusal of a module whose
	// state_version differs from the session's.
	ErrStateVersion = errors.New("state version differs")
)

var kindErrs = map[Kind]error{
	KindInvalid: ErrInvalidModule, KindTrap: ErrTrap, KindTimeout: ErrTimeout, KindMemory: ErrMemory,
	KindABI: ErrABI, KindDisabled: ErrDisabled, KindClosed: ErrClosed,
}

// Error is a refused module or a failed call.
type Error struct {
	Source  string // the file (load errors)
	Decoder string // the decoder name, when known
	Version string // the decoder version, when known
	Kind    Kind
	Err     error // detail
}

func (e *Error) Error() string {
	name := e.Decoder
	if e.Version != "" {
		name += " " + e.Version
	}
	if e.Source != "" {
		if name == "" {
			name = e.Source
		} else {
			name = e.Source + " (" + name + ")"
		}
	}
	if name == "" {
		name = "decoder"
	}
	if e.Err == nil {
		return fmt.Sprintf("%s: %v", name, kindErrs[e.Kind])
	}
	return fmt.Sprintf("%s: %v: %v", name, kindErrs[e.Kind], e.Err)
}

// Unwrap exposes ErrGuest (guest faults), the kind's sentinel and the
// detail.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 3)
	if e.Kind.guest() {
		out = append(out, ErrGuest)
	}
	out = append(out, kindErrs[e.Kind])
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// KindOf returns the kind of a wasmdecoder error, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}
