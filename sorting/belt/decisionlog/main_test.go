package decisionlog_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The flusher must end with its context: nothing the recorder starts may
// outlive a test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}
