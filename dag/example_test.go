package dag_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/expresshub/station/dag"
)

// Example shows the whole life of a flow: declare keys and steps, load a
// config, compile, publish, run, read outputs and the trace.
func Example() {
	type Parcel struct {
		Market string `expr:"market" json:"market"`
		COD    int64  `expr:"cod" json:"cod"`
	}
	var (
		trackingNo = dag.NewKey[string]("tracking_no")
		parcel     = dag.NewKey[Parcel]("parcel")
		paid       = dag.NewKey[bool]("paid")
		chute      = dag.NewKey[int]("chute")
	)
	reg := dag.NewRegistry()
	_ = reg.DeclareInputs(trackingNo)
	err := reg.Register(
		dag.Step{
			Name: "fetch", Reads: []dag.AnyKey{trackingNo}, Writes: []dag.AnyKey{parcel},
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				dag.Set(out, parcel, Parcel{Market: dag.Get(in, trackingNo)[:2], COD: 500})
				return nil
			},
		},
		dag.Step{
			Name: "check_billing", Reads: []dag.AnyKey{parcel}, Writes: []dag.AnyKey{paid},
			Criticality: dag.Degradable,
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				return dag.Retryable(errors.New("finance unavailable"))
			},
		},
		dag.Step{
			Name: "resolve_chute", Reads: []dag.AnyKey{parcel, paid}, Writes: []dag.AnyKey{chute},
			Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
				if ok, present := dag.Lookup(in, paid); present && !ok {
					dag.Set(out, chute, 99) // exception chute
					return nil
				}
				dag.Set(out, chute, 7)
				return nil
			},
		},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := dag.ParseConfig([]byte(`
name: sort-br
version: "1"
deadline: 1s
inputs: [tracking_no]
nodes:
  - step: fetch
  - step: check_billing
    depends_on: [fetch]
    condition: parcel.cod > 0 && parcel.market in ["BR"]
    retry: {attempts: 2, backoff: 1ms}
    fallback: {paid: false}
  - step: resolve_chute
    depends_on: [fetch, check_billing]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := dag.Compile(cfg, reg)
	if err != nil {
		fmt.Println(err) // a *dag.ValidationError listing every problem
		return
	}
	flows := dag.NewFlows()
	_ = flows.Publish(plan)

	current, _ := flows.Get("sort-br")
	res, err := dag.Run(context.Background(), current, []dag.Value{trackingNo.Bind("BR1000000001")}, dag.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := dag.Output(res, chute)
	fmt.Println("chute", c)
	for _, d := range res.Degraded {
		fmt.Printf("degraded %s: %s\n", d.Node, d.Reason)
	}
	for _, n := range res.Trace.Nodes {
		fmt.Println(n.Node, n.Outcome, n.Attempts)
	}
	// Output:
	// chute 99
	// degraded check_billing: finance unavailable
	// fetch ok 1
	// check_billing degraded 2
	// resolve_chute ok 1
}
