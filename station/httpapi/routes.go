package httpapi

import (
	"net/http"
	"net/http/pprof"

	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/webui"
)

// routes lists every route of the HTTP API in one place.
func (s *Server) routes(mux *http.ServeMux) {
	// Probes and metrics: unauthenticated, for the platform.
	mux.Handle("GET /healthz", s.handle(public, s.healthz))
	mux.Handle("GET /readyz", s.handle(public, s.readyz))
	mux.Handle("GET /metrics", s.metricsHandler())

	// Authentication.
	mux.Handle("POST /api/v1/auth/login", s.handle(public, s.login))
	mux.Handle("POST /api/v1/auth/logout", s.handle(anyOperator, s.logout))
	mux.Handle("GET /api/v1/me", s.handle(anyOperator, s.me))

	// Receive and sort: every station role scans.
	mux.Handle("POST /api/v1/receive", s.handle(anyOperator, s.receive))
	mux.Handle("POST /api/v1/sort", s.handle(anyOperator, s.sort))
	mux.Handle("GET /api/v1/sort/{tracking_no}", s.handle(anyOperator, s.latestSort))
	mux.Handle("GET /api/v1/parcels/{tracking_no}", s.handle(anyOperator, s.parcel))
	mux.Handle("GET /api/v1/stations/{id}/chutes", s.handle(anyOperator, s.getChutes))
	mux.Handle("PUT /api/v1/stations/{id}/chutes", s.handle(roles(auth.RoleSupervisor, auth.RoleOps), s.putChutes))
	mux.Handle("GET /api/v1/flows", s.handle(anyOperator, s.listFlows))

	// The sorter floor: bags under chutes, chute states, the live view.
	mux.Handle("PUT /api/v1/stations/{id}/chutes/{chute}/bag", s.handle(anyOperator, s.chuteBag(true)))
	mux.Handle("DELETE /api/v1/stations/{id}/chutes/{chute}/bag", s.handle(anyOperator, s.chuteBag(false)))
	mux.Handle("PUT /api/v1/stations/{id}/chutes/{chute}/state", s.handle(roles(auth.RoleSupervisor, auth.RoleOps), s.setChuteState))
	mux.Handle("PUT /api/v1/stations/{id}/bag-limits", s.handle(roles(auth.RoleSupervisor, auth.RoleOps), s.putBagLimits))
	mux.Handle("GET /api/v1/stations/{id}/floor", s.handle(anyOperator, s.getFloor))
	mux.Handle("GET /api/v1/stations/{id}/floor/events", s.handle(anyOperator, s.floorEvents))
	mux.Handle("GET /api/v1/stations/{id}/sorters/decisions", s.handle(roles(auth.RoleSupervisor, auth.RoleOps), s.sorterDecisions))
	mux.Handle("GET /api/v1/exceptions", s.handle(anyOperator, s.listReasonCodes))

	// Packing and handover: every station role packs and hands over; an
	// object of another station is refused (403) by the domain.
	mux.Handle("POST /api/v1/bags", s.handle(anyOperator, s.openBag))
	mux.Handle("GET /api/v1/bags", s.handle(anyOperator, s.listBags))
	mux.Handle("GET /api/v1/bags/{id}", s.handle(anyOperator, s.getBag))
	mux.Handle("POST /api/v1/bags/{id}/items", s.handle(anyOperator, s.addBagItem))
	mux.Handle("DELETE /api/v1/bags/{id}/items/{tracking_no}", s.handle(anyOperator, s.removeBagItem))
	mux.Handle("POST /api/v1/bags/{id}/seal", s.handle(anyOperator, s.sealBag))
	mux.Handle("GET /api/v1/bags/{id}/label", s.handle(anyOperator, s.bagLabel))
	mux.Handle("POST /api/v1/handovers", s.handle(anyOperator, s.openHandover))
	mux.Handle("GET /api/v1/handovers", s.handle(anyOperator, s.listHandovers))
	mux.Handle("GET /api/v1/handovers/{id}", s.handle(anyOperator, s.getHandover))
	mux.Handle("POST /api/v1/handovers/{id}/bags", s.handle(anyOperator, s.addHandoverBag))
	mux.Handle("POST /api/v1/handovers/{id}/close", s.handle(anyOperator, s.closeHandover))
	mux.Handle("GET /api/v1/handovers/{id}/manifest", s.handle(anyOperator, s.handoverManifest))

	// Gray release and reconciliation: ops, network-wide.
	opsOnly := roles(auth.RoleOps)
	mux.Handle("GET /api/v1/ops/sites/{id}/release", s.handle(opsOnly, s.getRelease))
	mux.Handle("PUT /api/v1/ops/sites/{id}/release", s.handle(opsOnly, s.putRelease))
	mux.Handle("POST /api/v1/ops/sites/{id}/release/kill", s.handle(opsOnly, s.killRelease))
	mux.Handle("GET /api/v1/ops/sites/{id}/ramp", s.handle(opsOnly, s.getRamp))
	mux.Handle("GET /api/v1/ops/releases", s.handle(opsOnly, s.releaseOverview))
	mux.Handle("GET /api/v1/ops/audit", s.handle(opsOnly, s.audit))
	mux.Handle("PUT /api/v1/ops/flows/{name}", s.handle(opsOnly, s.publishFlow))
	mux.Handle("GET /api/v1/ops/flows/{name}", s.handle(opsOnly, s.getFlow))
	mux.Handle("GET /api/v1/ops/markets", s.handle(opsOnly, s.listMarkets))
	mux.Handle("PUT /api/v1/ops/markets/{market}/flow", s.handle(opsOnly, s.assignMarket))
	mux.Handle("GET /api/v1/ops/flow-audit", s.handle(opsOnly, s.flowAudit))
	mux.Handle("GET /api/v1/ops/reconciliation", s.handle(opsOnly, s.reconciliation))
	mux.Handle("GET /api/v1/ops/reconciliation/{id}", s.handle(opsOnly, s.mismatch))
	mux.Handle("POST /api/v1/ops/reconciliation/offline", s.handle(opsOnly, s.offlineReconciliation))
	mux.Handle("POST /api/v1/ops/whatif", s.handle(opsOnly, s.whatif))

	// Profiling, ops only: it exposes internals.
	ops := roles(auth.RoleOps)
	mux.Handle("GET /debug/pprof/", s.handle(ops, wrap(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", s.handle(ops, wrap(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", s.handle(ops, wrap(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", s.handle(ops, wrap(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", s.handle(ops, wrap(pprof.Trace)))

	// Tracking relay (ops).
	mux.Handle("GET /api/v1/ops/outbox", s.handle(ops, s.outboxStats))
	mux.Handle("GET /api/v1/ops/outbox/dead", s.handle(ops, s.deadEvents))
	mux.Handle("POST /api/v1/ops/outbox/dead/{id}/retry", s.handle(ops, s.retryDeadEvent))
	mux.Handle("POST /api/v1/ops/outbox/dead/retry", s.handle(ops, s.redriveDead))
	mux.Handle("GET /api/v1/ops/outbox/pending", s.handle(ops, s.pendingEvents))
	mux.Handle("POST /api/v1/ops/outbox/pending/retry", s.handle(ops, s.retryPendingNow))
	mux.Handle("GET /api/v1/ops/outbox/audit", s.handle(ops, s.outboxAudit))

	mux.Handle("/api/", s.handle(public, func(w http.ResponseWriter, r *http.Request) error {
		return Errorf(http.StatusNotFound, "not_found", "no such endpoint")
	}))

	// The web terminal (/), the ops console (/ops) and their assets: the
	// least specific pattern, so every route above keeps priority.
	mux.Handle("/", webui.Handler())
}

func wrap(f http.HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f(w, r)
		return nil
	}
}
