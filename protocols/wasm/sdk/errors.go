package sdk

import (
	"errors"
	"fmt"
)

// Code is an ABI error code: what fc_frame returns and the status of a
// fc_decode output.
type Code int32

// The error codes of decoder ABI v1 (ABI.md "Error codes"), and CodeABI,
// which the SDK uses for a guest bug (a recovered panic, an error wrapping
// no sentinel, a record that breaks the ABI's caps): the host counts it as
// an ABI violation of the frame.
const (
	CodeMalformed    Code = -1
	CodeChecksum     Code = -2
	CodeTooLarge     Code = -3
	CodeUnauthorized Code = -4
	CodeNoDevice     Code = -5
	CodeUnsupported  Code = -6
	CodeABI          Code = -100
)

// sentinel is one of the six errors a decoder returns (wrapped).
type sentinel struct {
	code Code
	msg  string
	name string // the self-test name: malformed, checksum, …
}

func (e *sentinel) Error() string { return e.msg }

// Sentinel errors. Return them wrapped (Errorf, or fmt.Errorf with %w):
// the SDK turns them into the ABI code, the host into the plugins
// sentinel of the same name.
var (
	// ErrMalformed: the bytes can never form a valid frame.
	ErrMalformed error = &sentinel{CodeMalformed, "malformed frame", "malformed"}
	// ErrChecksum: the frame's CRC/checksum does not match.
	ErrChecksum error = &sentinel{CodeChecksum, "checksum mismatch", "checksum"}
	// ErrTooLarge: a length field exceeds the frame cap (Call.MaxFrame).
	ErrTooLarge error = &sentinel{CodeTooLarge, "frame too large", "too_large"}
	// ErrUnauthorized: the device is not allowed.
	ErrUnauthorized error = &sentinel{CodeUnauthorized, "device not allowed", "unauthorized"}
	// ErrNoDevice: a data frame before the device identified itself.
	ErrNoDevice error = &sentinel{CodeNoDevice, "no device identification", "no_device"}
	// ErrUnsupported: a well-formed frame of a kind the decoder does not
	// handle.
	ErrUnsupported error = &sentinel{CodeUnsupported, "unsupported frame", "unsupported"}
)

var sentinels = func() []*sentinel {
	var out []*sentinel
	for _, err := range []error{ErrMalformed, ErrChecksum, ErrTooLarge, ErrUnauthorized, ErrNoDevice, ErrUnsupported} {
		var s *sentinel
		if errors.As(err, &s) {
			out = append(out, s)
		}
	}
	return out
}()

// errorNames are the self-test names of the sentinels (Want.Error).
func errorName(name string) bool {
	for _, s := range sentinels {
		if s.name == name {
			return true
		}
	}
	return false
}

// Errorf returns an error wrapping sentinel whose text is the formatted
// message: `sdk.Errorf(sdk.ErrChecksum, "crc %04x, want %04x", got, want)`
// reads "checksum mismatch: crc 1234, want 4321". It allocates; errors are
// not the steady state.
func Errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// CodeOf returns the ABI code of err: the code of the sentinel it wraps,
// 0 for nil, CodeABI for an error wrapping none (a decoder bug).
func CodeOf(err error) Code {
	if err == nil {
		return 0
	}
	var s *sentinel
	if errors.As(err, &s) {
		return s.code
	}
	return CodeABI
}

// ErrorName is the self-test name of a code (malformed, checksum, …), ""
// for any other code.
func ErrorName(c Code) string {
	for _, s := range sentinels {
		if s.code == c {
			return s.name
		}
	}
	return ""
}
