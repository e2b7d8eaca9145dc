package belt

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
)

func TestConfirmBoundsEventTimeAgainstTheClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	rdb, prefix := dbtest.Redis(t)
	b := newTestBelt(t, db, simtest.Start(t, simtest.WithZeroLatency()), rdb, prefix)
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	seq := uint64(0)
	confirm := func(at time.Time) error {
		seq++
		_, err := b.Confirm(ctx, SorterEvent{StationID: "SG-H01", SorterID: "asm1", Sequence: seq, Outcome: OutcomeNoRead, OccurredAt: at})
		return err
	}
	for _, at := range []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		now.Add(5*time.Minute + time.Second),
		now.Add(-7*24*time.Hour - time.Second),
		time.Unix(0, 0),
	} {
		if err := confirm(at); !errors.Is(err, ErrInvalidSorterEvent) {
			t.Errorf("occurred_at %s: %v, want ErrInvalidSorterEvent", at, err)
		}
	}
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM sorter_confirms`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d confirms recorded from refused times (%v)", n, err)
	}
	for _, at := range []time.Time{{}, now, now.Add(4 * time.Minute), now.Add(-6 * 24 * time.Hour)} {
		if err := confirm(at); err != nil {
			t.Errorf("occurred_at %s: %v, want accepted", at, err)
		}
	}
}
