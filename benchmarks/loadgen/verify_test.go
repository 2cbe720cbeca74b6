package loadgen

import "testing"

func TestCompare(t *testing.T) {
	tests := []struct {
		name                        string
		ledger, stored              map[string][]int64
		acked, lost, dups, unackedN int64
	}{
		{"exact", map[string][]int64{"a": {1, 2, 3}}, map[string][]int64{"a": {3, 1, 2}}, 3, 0, 0, 0},
		{"lost", map[string][]int64{"a": {1, 2, 3}}, map[string][]int64{"a": {1, 3}}, 3, 1, 0, 0},
		{"duplicate", map[string][]int64{"a": {1, 2}}, map[string][]int64{"a": {1, 2, 2, 2}}, 2, 0, 2, 0},
		{"stored not acked", map[string][]int64{"a": {2}}, map[string][]int64{"a": {1, 2, 3}}, 1, 0, 0, 2},
		{"ledger repeats count once", map[string][]int64{"a": {1, 1, 2}}, map[string][]int64{"a": {1, 2}}, 2, 0, 0, 0},
		{"device missing", map[string][]int64{"a": {1}, "b": {5, 6}}, map[string][]int64{"a": {1}}, 3, 2, 0, 0},
		{"duplicate of unacked", map[string][]int64{"a": {}}, map[string][]int64{"a": {7, 7}}, 0, 0, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Compare(tc.ledger, tc.stored)
			if v.Acked != tc.acked || v.Lost != tc.lost || v.Duplicates != tc.dups || v.Unacked != tc.unackedN {
				t.Errorf("got acked %d lost %d dups %d unacked %d, want %d %d %d %d",
					v.Acked, v.Lost, v.Duplicates, v.Unacked, tc.acked, tc.lost, tc.dups, tc.unackedN)
			}
			if int(v.Lost) != len(v.Missing) {
				t.Errorf("lost %d but %d samples", v.Lost, len(v.Missing))
			}
		})
	}
}
