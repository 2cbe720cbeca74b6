package wasmdecoder

import "errors"

// ErrGuest stands in for the host's sentinel until branch host is merged.
var ErrGuest = errors.New("guest failure")
