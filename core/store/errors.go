package store

import (
	"errors"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
)

// The questions every caller asks about a failed Postgres call, answered
// in one place (in the style of pgconn.SafeToRetry) instead of each caller
// matching SQLSTATE lists of its own.
//
//   - Unreachable: nothing answered, or the server answered the way it does
//     while starting, shutting down or out of connections (classes 08, 53,
//     57, 58). Wait and try again.
//   - Unavailable: Unreachable, or the fault is in the server's state or the
//     deployment rather than in the data: transaction rollback (40), object
//     state (55), internal (XX), transaction state (25), authorization
//     (28), catalog name (3D), syntax or access rules (42: a table missing
//     or not writable). The same data can succeed later; never refuse or
//     quarantine a record for it.
//   - DataError: Postgres answered with any other SQLSTATE (data exception
//     22, integrity constraint 23, program limit 54 such as an index row
//     too large, a trigger's raise P0, …): the data itself is refused and
//     sending the same record again cannot succeed. The write path isolates
//     such records (WriteSignals) instead of failing their batch.

// unreachableClasses and unavailableClasses are SQLSTATE classes (the
// first two characters).
var (
	unreachableClasses = []string{"08", "53", "57", "58"}
	unavailableClasses = []string{"40", "55", "XX", "25", "28", "3D", "42"}
)

func pgClass(err error) (string, bool) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return "", false
	}
	return pg.Code[:2], true
}

func inClass(class string, list []string) bool {
	for _, c := range list {
		if c == class {
			return true
		}
	}
	return false
}

// Unreachable reports whether err means Postgres is not there (yet): no
// answer at all, or an answer of class 08, 53, 57 or 58.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	class, ok := pgClass(err)
	return !ok || inClass(class, unreachableClasses)
}

// Unavailable reports whether err is about the server or the deployment
// rather than the data (see above): the same write may succeed later.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	class, ok := pgClass(err)
	return !ok || inClass(class, unreachableClasses) || inClass(class, unavailableClasses)
}

// DataError reports whether Postgres refused the data itself: it answered
// with an error that is not Unavailable. Retrying the same record cannot
// succeed.
func DataError(err error) bool {
	if err == nil {
		return false
	}
	class, ok := pgClass(err)
	return ok && !inClass(class, unreachableClasses) && !inClass(class, unavailableClasses)
}

// SQLState is err's SQLSTATE ("" when Postgres did not answer with one)
// and the server's message (err's text otherwise).
func SQLState(err error) (code, message string) {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code, pg.Message
	}
	return "", err.Error()
}

// copyLineRE finds the row of a COPY error in its context ("COPY signals,
// line 17" or "COPY signals, line 17, column device_id: …").
var copyLineRE = regexp.MustCompile(`COPY [^,]+, line ([0-9]+)`)

// copyLine is the 1-based row of a COPY that err is about, if Postgres
// said which.
func copyLine(err error) (int, bool) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return 0, false
	}
	m := copyLineRE.FindStringSubmatch(pg.Where)
	if m == nil {
		return 0, false
	}
	n, err2 := strconv.Atoi(m[1])
	return n, err2 == nil && n > 0
}
