package rules

import "context"

// SetBeforeCommit installs a hook that runs before each rule batch commits.
func SetBeforeCommit(r *Runner, f func(ctx context.Context, rule string, lastID int64)) {
	r.beforeCommit = f
}
