package organizer

import "context"

// SetBeforeCommit installs a hook that runs before each rule batch commits.
func SetBeforeCommit(r *RuleRunner, f func(ctx context.Context, rule string, lastID int64)) {
	r.beforeCommit = f
}
