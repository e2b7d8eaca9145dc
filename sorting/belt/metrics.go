package belt

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// beltMetrics are what the floor's dashboards read besides the decisions:
// what the machine reported, and the bags under the chutes.
type beltMetrics struct {
	outcomes    *prometheus.CounterVec // by outcome: sorted, no_read, chute_full, recirculated, rejected, ...
	fill        *prometheus.GaugeVec   // by station, chute: the bag's fill ratio
	suggestions *prometheus.CounterVec // by station, level: confirms that left a bag at seal_soon or seal_now
	unbagged    *prometheus.CounterVec // by station, reason: confirms into a next hop's chute that no bag took
}

func newBeltMetrics(reg prometheus.Registerer) beltMetrics {
	m := beltMetrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "station_sorter_outcomes_total",
			Help: "What the sorting machine reported, by outcome (sorted, no_read, chute_full, recirculated, rejected, ...)."}, []string{"outcome"}),
		fill: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "station_chute_bag_fill_ratio",
			Help: "Fill of the bag under a chute against the station's bag limits (the fuller of parcels and weight), as of its last confirm."}, []string{"station", "chute"}),
		suggestions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "station_chute_seal_suggestions_total",
			Help: "Confirms that left the bag under a chute at seal_soon or seal_now."}, []string{"station", "level"}),
		unbagged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "station_chute_unbagged_confirms_total",
			Help: "Confirms into a next hop's chute that no bag took, by reason (no_bag, wrong_next_hop, ...)."}, []string{"station", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.fill, m.suggestions, m.unbagged)
	}
	return m
}

func (m beltMetrics) chuteBag(station string, chute int, c *ChuteBag) {
	if !c.Added {
		m.unbagged.WithLabelValues(station, c.Reason).Inc()
	}
	if c.BagID == "" {
		return
	}
	m.fill.WithLabelValues(station, strconv.Itoa(chute)).Set(c.Ratio)
	if c.Level == "seal_soon" || c.Level == "seal_now" {
		m.suggestions.WithLabelValues(station, c.Level).Inc()
	}
}
