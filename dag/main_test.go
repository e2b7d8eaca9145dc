package dag_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/expresshub/station/dag"
)

// TestMain fails the package if any test leaves a goroutine behind: Run
// promises that none outlives it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Waybill is a fixture shaped like what sorting will pass around: tags for
// conditions (expr) and fallbacks (json).
type Waybill struct {
	TrackingNo string `json:"tracking_no" expr:"tracking_no"`
	CODAmount  int64  `json:"cod_amount" expr:"cod_amount"`
	Market     string `json:"market" expr:"market"`
}

type Route struct {
	NextHop string `json:"next_hop" expr:"next_hop"`
	Chute   int    `json:"chute" expr:"chute"`
}

var (
	keyTrackingNo = dag.NewKey[string]("tracking_no")
	keyWaybill    = dag.NewKey[Waybill]("waybill")
	keyBillingOK  = dag.NewKey[bool]("billing_ok")
	keyRoute      = dag.NewKey[Route]("route")
	keySorted     = dag.NewKey[string]("sorted")
	keyPersisted  = dag.NewKey[bool]("persisted")
)

// newRegistry registers steps and the tracking_no input, failing the test
// on error.
func newRegistry(t testing.TB, steps ...dag.Step) *dag.Registry {
	t.Helper()
	reg := dag.NewRegistry()
	if err := reg.DeclareInputs(keyTrackingNo); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(steps...); err != nil {
		t.Fatal(err)
	}
	return reg
}

func mustCompile(t testing.TB, reg *dag.Registry, yaml string) *dag.Plan {
	t.Helper()
	cfg, err := dag.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := dag.Compile(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sortingSteps is a small parcel-shaped flow: fetch, then billing and route
// in parallel, then sort, then persist (effectful).
func sortingSteps() []dag.Step {
	return []dag.Step{
		{
			Name: "fetch_waybill", Reads: []dag.AnyKey{keyTrackingNo}, Writes: []dag.AnyKey{keyWaybill},
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				tn := dag.Get(in, keyTrackingNo)
				wb := Waybill{TrackingNo: tn, Market: tn[:2]}
				if strings.HasSuffix(tn, "9") {
					wb.CODAmount = 1250
				}
				dag.Set(out, keyWaybill, wb)
				return nil
			},
		},
		{
			Name: "check_billing", Reads: []dag.AnyKey{keyWaybill}, Writes: []dag.AnyKey{keyBillingOK},
			Criticality: dag.Degradable,
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				dag.Set(out, keyBillingOK, dag.Get(in, keyWaybill).CODAmount < 10000)
				return nil
			},
		},
		{
			Name: "get_route", Reads: []dag.AnyKey{keyWaybill}, Writes: []dag.AnyKey{keyRoute},
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				dag.Set(out, keyRoute, Route{NextHop: dag.Get(in, keyWaybill).Market + "-L07", Chute: 12})
				return nil
			},
		},
		{
			Name: "resolve_chute", Reads: []dag.AnyKey{keyRoute, keyBillingOK}, Writes: []dag.AnyKey{keySorted},
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				ok, present := dag.Lookup(in, keyBillingOK)
				r := dag.Get(in, keyRoute)
				switch {
				case present && !ok:
					dag.Set(out, keySorted, "exception")
				default:
					dag.Set(out, keySorted, r.NextHop)
				}
				return nil
			},
		},
		{
			Name: "persist", Reads: []dag.AnyKey{keySorted}, Writes: []dag.AnyKey{keyPersisted}, Effectful: true,
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				dag.Set(out, keyPersisted, true)
				return nil
			},
		},
	}
}

const sortingFlow = `
name: sort-sg
version: "1"
deadline: 2s
inputs: [tracking_no]
nodes:
  - step: fetch_waybill
    timeout: 1s
  - step: check_billing
    depends_on: [fetch_waybill]
    condition: waybill.cod_amount > 0
  - step: get_route
    depends_on: [fetch_waybill]
  - step: resolve_chute
    depends_on: [get_route, check_billing]
  - step: persist
    depends_on: [resolve_chute]
`
