package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// Options are the dependencies of a Set, built once by the caller.
type Options struct {
	// Registerer receives the metrics; nil keeps them unexported.
	Registerer prometheus.Registerer
	// Redis shares the order center token between instances; nil keeps
	// the token per process (every instance then fetches its own).
	Redis redis.UniversalClient
	// Logger for breaker and token events; nil discards.
	Logger *slog.Logger
	// DialOptions are appended to the defaults (plaintext transport), e.g.
	// grpc.WithTransportCredentials for TLS.
	DialOptions []grpc.DialOption
}

// Set holds one typed client per downstream service.
type Set struct {
	OrderCenter *OrderCenter
	Basic       *Basic
	Finance     *Finance
	Delivery    *Delivery
	Container   *Container
	Linehaul    *Linehaul

	conns []*grpc.ClientConn
}

// Dial builds the clients. Connections are made lazily (the first call, or
// at once in the background): Dial fails only on bad configuration, never
// because a dependency is down, so Station starts and degrades instead.
// Services sharing an address share one connection.
func Dial(ctx context.Context, cfg Config, opts Options) (*Set, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, err := serviceConfig(cfg.Retry)
	if err != nil {
		return nil, err
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The retry policy is ours: never let a resolver replace it.
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultServiceConfig(sc),
	}, opts.DialOptions...)

	s := &Set{}
	byAddr := map[string]*grpc.ClientConn{}
	conn := func(service string) (*grpc.ClientConn, error) {
		addr := cfg.AddrOf(service)
		if c, ok := byAddr[addr]; ok {
			return c, nil
		}
		c, err := grpc.NewClient(addr, dialOpts...)
		if err != nil {
			return nil, fmt.Errorf("clients: %s at %s: %w", service, addr, err)
		}
		c.Connect()
		byAddr[addr] = c
		s.conns = append(s.conns, c)
		return c, nil
	}
	m := newMetrics(opts.Registerer)
	conns := map[string]*grpc.ClientConn{}
	for _, svc := range []string{ServiceOrderCenter, ServiceBasic, ServiceFinance, ServiceDelivery, ServiceContainer, ServiceLinehaul} {
		c, err := conn(svc)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		conns[svc] = c
	}
	s.OrderCenter = newOrderCenter(downstreamv1.NewOrderCenterServiceClient(conns[ServiceOrderCenter]),
		newEndpoint(ServiceOrderCenter, cfg, m, log), cfg.Token, opts.Redis, m, log)
	s.Basic = newBasic(downstreamv1.NewBasicServiceClient(conns[ServiceBasic]), newEndpoint(ServiceBasic, cfg, m, log), cfg, m)
	s.Finance = &Finance{rpc: downstreamv1.NewFinanceServiceClient(conns[ServiceFinance]), ep: newEndpoint(ServiceFinance, cfg, m, log)}
	s.Delivery = &Delivery{rpc: downstreamv1.NewDeliveryServiceClient(conns[ServiceDelivery]), ep: newEndpoint(ServiceDelivery, cfg, m, log)}
	s.Container = &Container{rpc: downstreamv1.NewContainerServiceClient(conns[ServiceContainer]), ep: newEndpoint(ServiceContainer, cfg, m, log)}
	s.Linehaul = &Linehaul{rpc: downstreamv1.NewLinehaulServiceClient(conns[ServiceLinehaul]), ep: newEndpoint(ServiceLinehaul, cfg, m, log)}
	return s, nil
}

// Close closes every connection; calls in flight fail with ErrUnavailable
// or a context error.
func (s *Set) Close() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	s.conns = nil
	return errors.Join(errs...)
}

// idempotentReads may be retried: asking twice changes nothing. Writes
// (PushTrackingEvents, AllocateBagID) and IssueToken are never retried by
// the transport; their callers own that decision.
var idempotentReads = map[string][]string{
	"downstream.v1.OrderCenterService": {"GetWaybill", "BatchGetWaybills", "GetCustomerStatus", "GetFiscalDocument"},
	"downstream.v1.BasicService":       {"GetSite", "GetRoute", "GetRouteV2", "CheckServiceArea", "GetLaneRestrictions"},
	"downstream.v1.FinanceService":     {"CheckBilling", "CheckCODLimit"},
	"downstream.v1.DeliveryService":    {"GetDeliveryStatus", "ValidateAddress"},
	"downstream.v1.LinehaulService":    {"GetTrip"},
}

// serviceConfig is the gRPC service config: a retry policy for the
// idempotent reads only, on UNAVAILABLE and RESOURCE_EXHAUSTED, with
// exponential backoff; and retry throttling as the budget.
func serviceConfig(r RetryConfig) (string, error) {
	type name struct {
		Service string `json:"service"`
		Method  string `json:"method"`
	}
	var names []name
	for svc, methods := range idempotentReads {
		for _, m := range methods {
			names = append(names, name{svc, m})
		}
	}
	methodConfig := []map[string]any{}
	if r.MaxAttempts > 1 {
		methodConfig = append(methodConfig, map[string]any{
			"name": names,
			"retryPolicy": map[string]any{
				"maxAttempts":          r.MaxAttempts,
				"initialBackoff":       seconds(r.InitialBackoff.Seconds()),
				"maxBackoff":           seconds(r.MaxBackoff.Seconds()),
				"backoffMultiplier":    2.0,
				"retryableStatusCodes": []string{"UNAVAILABLE", "RESOURCE_EXHAUSTED"},
			},
		})
	}
	b, err := json.Marshal(map[string]any{
		"methodConfig": methodConfig,
		"retryThrottling": map[string]any{
			"maxTokens":  r.BudgetTokens,
			"tokenRatio": r.BudgetRatio,
		},
	})
	if err != nil {
		return "", fmt.Errorf("clients: service config: %w", err)
	}
	return string(b), nil
}

func seconds(s float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", s), "0"), ".") + "s"
}
