package sim

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// DefaultSeed seeds the fixtures unless the config names another.
const DefaultSeed = 20240601

// Latency profile names.
const (
	ProfileDefault = "default" // the origin-story profile, see doc.go
	ProfileZero    = "zero"    // no latency at all, for throughput benchmarks
)

// Config configures a Simulator. The zero value is usable (seed 0, no
// latency, no faults, 5-minute tokens); DefaultConfig is what `station sim`
// starts with.
type Config struct {
	// Seed varies names, weights and sizes; the fate of a parcel does not
	// depend on it (see Fixtures.Parcel).
	Seed int64 `mapstructure:"seed" yaml:"seed"`
	// Latency names the profile: ProfileDefault or ProfileZero ("" = zero).
	Latency string `mapstructure:"latency" yaml:"latency"`
	// LatencyOverrides replaces the profile's latency of single methods,
	// keyed by short ("GetSite") or full method name.
	LatencyOverrides map[string]Latency `mapstructure:"latency_overrides" yaml:"latency_overrides"`
	// Faults to inject from the start, keyed like LatencyOverrides.
	Faults map[string]Fault `mapstructure:"faults" yaml:"faults"`
	// TokenTTL is the lifetime of tokens from IssueToken (default 5m).
	TokenTTL time.Duration `mapstructure:"token_ttl" yaml:"token_ttl"`
	// SkipTokenCheck lets PushTrackingEvents through without a valid
	// "authorization: Bearer <token>" (it is checked by default).
	SkipTokenCheck bool `mapstructure:"skip_token_check" yaml:"skip_token_check"`
}

// DefaultConfig is the configuration of `station sim`: default seed, the
// origin-story latency profile, no faults.
func DefaultConfig() Config {
	return Config{Seed: DefaultSeed, Latency: ProfileDefault, TokenTTL: 5 * time.Minute}
}

// Latency of one method: Base plus a uniform random Jitter in [0, Jitter].
type Latency struct {
	Base   time.Duration `mapstructure:"base" yaml:"base"`
	Jitter time.Duration `mapstructure:"jitter" yaml:"jitter"`
}

// Fault makes a method misbehave; see SimAdminService's Fault in admin.proto.
// AddedLatency is slept first, then a Hang blocks until the caller gives up,
// then ErrorRate decides: call k fails iff ceil(k*r) > ceil((k-1)*r), so a
// rate of 0.5 fails calls 1, 3, 5, ...: exact, repeatable, and the first
// call after setting a fault always fails.
type Fault struct {
	ErrorRate float64 `mapstructure:"error_rate" yaml:"error_rate"`
	// Code to fail with; codes.Unavailable when OK (0).
	Code         codes.Code    `mapstructure:"code" yaml:"code"`
	Hang         bool          `mapstructure:"hang" yaml:"hang"`
	AddedLatency time.Duration `mapstructure:"added_latency" yaml:"added_latency"`
}

// Validate reports a fault that cannot be injected.
func (f Fault) Validate() error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("sim: fault error rate %v: want 0..1", f.ErrorRate)
	}
	if f.AddedLatency < 0 {
		return fmt.Errorf("sim: fault added latency %v: want >= 0", f.AddedLatency)
	}
	if f.Code > codes.Unauthenticated {
		return fmt.Errorf("sim: fault code %d: not a gRPC code", f.Code)
	}
	return nil
}

// LatencyProfile is a latency per method (by full name) plus one for every
// method not listed.
type LatencyProfile struct {
	Name    string
	Other   Latency
	Methods map[string]Latency
}

// checkMethods are the ten "check" calls of a full market's sort (GetSite
// runs twice: this station and the destination). Each costs 64-72 ms, so one
// after another they sum to ~700 ms, side by side ~70 ms.
var checkMethods = []string{
	downstreamv1.BasicService_GetSite_FullMethodName,
	downstreamv1.BasicService_CheckServiceArea_FullMethodName,
	downstreamv1.BasicService_GetLaneRestrictions_FullMethodName,
	downstreamv1.FinanceService_CheckBilling_FullMethodName,
	downstreamv1.FinanceService_CheckCODLimit_FullMethodName,
	downstreamv1.DeliveryService_GetDeliveryStatus_FullMethodName,
	downstreamv1.DeliveryService_ValidateAddress_FullMethodName,
	downstreamv1.OrderCenterService_GetCustomerStatus_FullMethodName,
	downstreamv1.OrderCenterService_GetFiscalDocument_FullMethodName,
}

// DefaultLatency is the origin-story profile (see doc.go).
func DefaultLatency() LatencyProfile {
	p := LatencyProfile{
		Name:  ProfileDefault,
		Other: Latency{Base: time.Millisecond, Jitter: 2 * time.Millisecond},
		Methods: map[string]Latency{
			downstreamv1.OrderCenterService_GetWaybill_FullMethodName: {Base: 10 * time.Millisecond, Jitter: 4 * time.Millisecond},
			downstreamv1.BasicService_GetRoute_FullMethodName:         {Base: 6 * time.Millisecond, Jitter: 4 * time.Millisecond},
			downstreamv1.BasicService_GetRouteV2_FullMethodName:       {Base: 6 * time.Millisecond, Jitter: 4 * time.Millisecond},
		},
	}
	for _, m := range checkMethods {
		p.Methods[m] = Latency{Base: 64 * time.Millisecond, Jitter: 8 * time.Millisecond}
	}
	return p
}

// ZeroLatency answers every method at once.
func ZeroLatency() LatencyProfile {
	return LatencyProfile{Name: ProfileZero, Methods: map[string]Latency{}}
}

// Profile returns the named profile; "" is the zero profile.
func Profile(name string) (LatencyProfile, error) {
	switch name {
	case ProfileDefault:
		return DefaultLatency(), nil
	case ProfileZero, "":
		return ZeroLatency(), nil
	}
	return LatencyProfile{}, fmt.Errorf("sim: latency profile %q: want %q or %q", name, ProfileDefault, ProfileZero)
}

// For returns the latency of a method by full name.
func (p LatencyProfile) For(fullMethod string) Latency {
	if l, ok := p.Methods[fullMethod]; ok {
		return l
	}
	return p.Other
}

// With returns a copy of p with overrides applied (keys by short or full
// method name).
func (p LatencyProfile) With(overrides map[string]Latency) (LatencyProfile, error) {
	out := p
	out.Methods = maps.Clone(p.Methods)
	if out.Methods == nil {
		out.Methods = map[string]Latency{}
	}
	for k, l := range overrides {
		full, err := FullMethod(k)
		if err != nil {
			return LatencyProfile{}, err
		}
		if l.Base < 0 || l.Jitter < 0 {
			return LatencyProfile{}, fmt.Errorf("sim: latency of %s: want non-negative durations", k)
		}
		out.Methods[full] = l
	}
	return out, nil
}

// downstreamServices are the six services the simulator plays.
var downstreamServices = []*grpc.ServiceDesc{
	&downstreamv1.OrderCenterService_ServiceDesc,
	&downstreamv1.BasicService_ServiceDesc,
	&downstreamv1.FinanceService_ServiceDesc,
	&downstreamv1.DeliveryService_ServiceDesc,
	&downstreamv1.ContainerService_ServiceDesc,
	&downstreamv1.LinehaulService_ServiceDesc,
}

// Methods lists the full names of every downstream method the simulator
// serves (the admin service excluded).
func Methods() []string {
	var out []string
	for _, sd := range downstreamServices {
		for _, m := range sd.Methods {
			out = append(out, "/"+sd.ServiceName+"/"+m.MethodName)
		}
	}
	return out
}

// FullMethod resolves a method name given as "GetSite", "BasicService/GetSite"
// or "/downstream.v1.BasicService/GetSite" to its full gRPC name.
func FullMethod(name string) (string, error) {
	n := strings.TrimPrefix(strings.TrimSpace(name), "/")
	for _, sd := range downstreamServices {
		short := sd.ServiceName[strings.LastIndex(sd.ServiceName, ".")+1:]
		for _, m := range sd.Methods {
			if n == m.MethodName || n == short+"/"+m.MethodName || n == sd.ServiceName+"/"+m.MethodName {
				return "/" + sd.ServiceName + "/" + m.MethodName, nil
			}
		}
	}
	return "", fmt.Errorf("sim: unknown method %q", name)
}
