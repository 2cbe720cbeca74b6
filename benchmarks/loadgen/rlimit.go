package loadgen

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises this process's open-file limit (RLIMIT_NOFILE) to
// at least want, raising the hard limit too when the process may (root);
// it returns the soft limit in force afterwards.
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	next := lim
	next.Cur = want
	if next.Max < want {
		next.Max = want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
		// Not allowed above the hard limit: take what there is.
		next = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err2 != nil {
			return lim.Cur, fmt.Errorf("raising the open-file limit to %d: %w", want, err)
		}
		return lim.Max, fmt.Errorf("raising the open-file limit to %d: %w (using the hard limit %d)", want, err, lim.Max)
	}
	return want, nil
}
