package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds the station binary built once per test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "station-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m,
		goleak.Cleanup(func(int) { _ = os.RemoveAll(dir) }),
		// Pools and gRPC internals closed at cleanup may still be unwinding
		// when the last test returns.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// stationBinary builds the station command once per run (without the race
// detector: what is under test is the process's crash behaviour).
func stationBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(binDir, "station")
	buildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, "github.com/expresshub/station")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

// reportPrefix marks the log lines that `make reliability` copies into
// RELIABILITY.md (see station/reliability/report).
const reportPrefix = "REPORT "

// report logs one figure of a test for RELIABILITY.md.
func report(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Logf(reportPrefix+format, args...)
}
