package node_test

import (
	"testing"

	"github.com/fleetcore/fleetcore/core/api"
	"github.com/fleetcore/fleetcore/core/store"
)

// TestAPIRejectedLimitIsTheStores: the API clamps a listing where the
// store would refuse it.
func TestAPIRejectedLimitIsTheStores(t *testing.T) {
	if api.MaxRejectedLimit != store.MaxRejectedLimit {
		t.Fatalf("api.MaxRejectedLimit %d, store.MaxRejectedLimit %d", api.MaxRejectedLimit, store.MaxRejectedLimit)
	}
}
