package relay

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/workorder"
)

type metrics struct {
	pending      prometheus.Gauge
	oldestAge    prometheus.Gauge
	dead         prometheus.Gauge
	delivered    prometheus.Counter
	deadLettered prometheus.Counter
	failed       *prometheus.CounterVec
	batchLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "station_outbox_pending_events", Help: "Tracking events waiting in the outbox (all instances).",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "station_outbox_oldest_pending_age_seconds", Help: "Age of the oldest pending tracking event; 0 when none.",
		}),
		dead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "station_outbox_dead_events", Help: "Tracking events that exhausted their attempts and wait for ops.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "station_relay_delivered_total", Help: "Tracking events the order center acknowledged (this instance).",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "station_relay_dead_lettered_total", Help: "Tracking events this instance moved to dead.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_relay_failed_total",
			Help: "Tracking event pushes that did not deliver, by reason (unavailable, error, refused, rejected, no_ack).",
		}, []string{"reason"}),
		batchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "station_relay_batch_duration_seconds", Help: "Time to claim, push and settle one batch.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.pending, m.oldestAge, m.dead, m.delivered, m.deadLettered, m.failed, m.batchLatency)
	}
	return m
}

func (m *metrics) set(s workorder.Stats) {
	m.pending.Set(float64(s.Pending))
	m.oldestAge.Set(s.OldestPendingAgeSeconds)
	m.dead.Set(float64(s.Dead))
}
