package api

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// noDB is a database the endpoint never queries.
type noDB struct{}

func (noDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("no database in this test")
}
func (noDB) QueryRow(context.Context, string, ...any) pgx.Row { return nil }

type fakeDecoders []DecoderStatus

func (f fakeDecoders) Decoders() []DecoderStatus { return f }

func TestDecodersEndpoint(t *testing.T) {
	rows := fakeDecoders{
		{Name: "acme_wat", Version: "1.1.0+sha256:0123456789ab", State: "live", File: "acme.wasm", Sessions: 2},
		{Name: "acme_wat", Version: "1.2.0+sha256:ba9876543210", State: "disabled", File: "acme.wasm",
			Error: "5 consecutive guest failures; the last (trap): unreachable", GuestFailures: 5},
		{State: "refused", File: "broken.wasm", Error: "broken.wasm: fc_abi returned 2, want 1"},
	}
	for _, tc := range []struct {
		name string
		deps Deps
		want int
	}{{"folder", Deps{DB: noDB{}, Decoders: rows}, 3}, {"no folder", Deps{DB: noDB{}}, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{Address: "127.0.0.1:0", Token: "t0ken-for-the-decoders-test"}, tc.deps, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(s.Handler())
			defer ts.Close()
			get(t, ts.URL, "/api/decoders", "", 401, nil)
			var got struct {
				Decoders []DecoderStatus `json:"decoders"`
			}
			get(t, ts.URL, "/api/decoders", "t0ken-for-the-decoders-test", 200, &got)
			if len(got.Decoders) != tc.want {
				t.Fatalf("decoders = %+v, want %d rows", got.Decoders, tc.want)
			}
			if tc.want > 0 && (got.Decoders[1].State != "disabled" || got.Decoders[1].GuestFailures != 5 ||
				got.Decoders[2].Error == "" || got.Decoders[0].Sessions != 2) {
				t.Errorf("rows = %+v", got.Decoders)
			}
			get(t, ts.URL, "/api/decoders?x=1", "t0ken-for-the-decoders-test", 400, nil)
		})
	}
}
