// Package dbfail tells a database that is not there from every other
// database error, so both front doors answer "unavailable, retry" (HTTP 503,
// gRPC Unavailable) for the same causes instead of an internal error.
package dbfail

import (
	"errors"
	"io"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsUnavailable reports whether err means PostgreSQL could not be reached or
// dropped the connection, rather than refusing the statement.
func IsUnavailable(err error) bool {
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now, 08xxx connection exceptions
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004":
			return true
		}
	}
	// A connection that broke under the query (PostgreSQL restarted, the
	// link dropped): a write's outcome is unknown, and retrying with the
	// same scan id is what settles it, so the client is told to retry.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	return pgconn.SafeToRetry(err)
}
