package sorterapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every station a test starts is stopped at its cleanup; nothing the
// sorter API starts (stream pumps, on-the-fly sorts, the belt's listener)
// may outlive it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgtestdb's pools are closed after the last cleanup.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}
