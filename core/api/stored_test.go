package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fleetcore/fleetcore/core/integrity"
)

// TestCentiFormatsLikeIntegrity: the API shows a score as the alert
// reasons (integrity.FormatCenti) do.
func TestCentiFormatsLikeIntegrity(t *testing.T) {
	for _, c := range []int64{0, 5, 99, 100, 8735, 10000, -1, -250} {
		t.Run(integrity.FormatCenti(c), func(t *testing.T) {
			if got, want := Centi(c).String(), integrity.FormatCenti(c); got != want {
				t.Fatalf("Centi(%d) = %q, integrity says %q", c, got, want)
			}
		})
	}
}

// TestStoredScoreColumnsDecodeTheScorersJSON: the API's view of
// device_scores.dimensions and .losses reads back every field the scorer
// writes (a field renamed on one side loses its value here).
func TestStoredScoreColumnsDecodeTheScorersJSON(t *testing.T) {
	roundTrip := func(t *testing.T, in, view any) {
		t.Helper()
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, view); err != nil {
			t.Fatal(err)
		}
		back, err := json.Marshal(view)
		if err != nil {
			t.Fatal(err)
		}
		if string(back) != string(b) {
			t.Fatalf("the API reads\n%s\nas\n%s", b, back)
		}
	}
	t.Run("dimensions", func(t *testing.T) {
		roundTrip(t, []integrity.DimensionScore{{Dimension: "validity", Weight: 40, RateBP: 9000, LostCenti: 400, Evaluated: 12}}, &[]storedDimension{})
	})
	t.Run("losses", func(t *testing.T) {
		roundTrip(t, []integrity.Loss{{Dimension: "validity", Check: "gps.range", Version: "1.0.0", LostCenti: 400, Failed: 3,
			Warned: 1, Applicable: 12, Since: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Reason: "latitude outside"}}, &[]storedLoss{})
	})
}
