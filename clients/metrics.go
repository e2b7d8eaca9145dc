package clients

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/clients/flight"
	"github.com/expresshub/station/clients/internal/promreg"
)

// metrics of every client of one Set; shared by Sets on one registry.
type metrics struct {
	duration *prometheus.HistogramVec
	breaker  *prometheus.GaugeVec
	tokens   *prometheus.CounterVec
	cache    *prometheus.CounterVec
	flight   *flight.Metrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		duration: promreg.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "station_downstream_request_duration_seconds",
			Help:    "Downstream calls by service, method and result code (retries inside one call included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5, 5},
		}, []string{"service", "method", "code"})),
		breaker: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "station_downstream_breaker_state",
			Help: "Circuit breaker state per service: 0 closed, 1 half-open, 2 open.",
		}, []string{"service"})),
		tokens: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_downstream_token_refreshes_total",
			Help: "Order center token refreshes by source: issued (IssueToken called), shared (taken from Redis).",
		}, []string{"source"})),
		cache: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_basic_cache_lookups_total",
			Help: "Basic service lookups by kind (site, route, service_area, lane) and result: hit (answered from memory), miss (sent on; sites via singleflight).",
		}, []string{"kind", "result"})),
		flight: flight.NewMetrics(reg),
	}
}

func (m *metrics) observe(service, method, code string, d time.Duration) {
	m.duration.WithLabelValues(service, method, code).Observe(d.Seconds())
}
