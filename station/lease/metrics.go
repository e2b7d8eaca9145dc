package lease

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	held         *prometheus.GaugeVec
	acquisitions *prometheus.CounterVec
	losses       *prometheus.CounterVec
	runs         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "station_lease_held", Help: "1 while this instance holds the singleton job's lease, by lease name.",
		}, []string{"name"}),
		acquisitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_lease_acquisitions_total", Help: "Leases this instance acquired, by lease name.",
		}, []string{"name"}),
		losses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_lease_losses_total",
			Help: "Leases this instance lost while holding them, by lease name and reason (taken, unreachable, fenced).",
		}, []string{"name", "reason"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_lease_job_runs_total", Help: "Singleton job runs on this instance, by lease name and result (ok, error, lost).",
		}, []string{"name", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.held, m.acquisitions, m.losses, m.runs)
	}
	return m
}
