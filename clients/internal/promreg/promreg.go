// Package promreg registers Prometheus collectors on a registry the caller
// owns. It exists so that two instances of one component (two client sets in
// a test, two groups of one name) can share a registry: the second gets the
// collector the first registered instead of an error. It never touches the
// global registry.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns the collector to use: c itself,
// or the one already registered under the same descriptor. A nil reg leaves
// c unregistered (metrics are then kept but never exported).
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting descriptor is a programming error in our metric
		// names; keep working with an unexported collector rather than
		// failing a dependency's construction over metrics.
		return c
	}
	return c
}
