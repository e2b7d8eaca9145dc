package belt

import (
	"fmt"
	"time"
)

// checkOccurredAt bounds a sorter event's time against the server clock.
// The time is relayed to the order center and becomes the parcel's public
// history, so a machine with a wrong clock (or a forged 9999-12-31) must not
// put it there: not more than ConfirmMaxAhead ahead (clock skew), not older
// than ConfirmMaxAge (a machine that buffered its reports while offline).
// A zero time means "when Station received it" and is always accepted.
func (b *Service) checkOccurredAt(at time.Time) error {
	if at.IsZero() {
		return nil
	}
	now := b.now()
	switch {
	case at.After(now.Add(b.cfg.ConfirmMaxAhead)):
		return fmt.Errorf("%w: occurred_at %s is more than %s ahead of the station's clock (%s)",
			ErrInvalidSorterEvent, at.UTC().Format(time.RFC3339), b.cfg.ConfirmMaxAhead, now.UTC().Format(time.RFC3339))
	case at.Before(now.Add(-b.cfg.ConfirmMaxAge)):
		return fmt.Errorf("%w: occurred_at %s is more than %s before the station's clock (%s)",
			ErrInvalidSorterEvent, at.UTC().Format(time.RFC3339), b.cfg.ConfirmMaxAge, now.UTC().Format(time.RFC3339))
	}
	return nil
}
