package sim

import (
	"strconv"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

func (f *Fixtures) sitesDay() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
