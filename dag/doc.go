// Package dag runs a configured graph of named steps: the engine behind
// sorting flows, though it knows nothing about parcels.
//
// # What it owns
//
// Steps are Go functions registered by name in a Registry. Each declares
// the typed keys it reads and writes (Key[T]), whether it is effectful, and
// whether its failure is fatal or degradable. A flow Config (YAML or JSON,
// see ParseConfig) places steps in a graph of nodes with dependencies,
// timeouts, retries, fallbacks and conditions. Compile validates the whole
// config against the Registry, reporting every problem at once (cycles with
// their path, unknown steps and nodes, reads with no upstream producer, two
// producers of a key, type mismatches, bad timeouts, conditions that do not
// compile), and yields an immutable Plan. Run executes a Plan; Flows keeps
// published plans by name and version and swaps the current one atomically.
//
//	reg := dag.NewRegistry()
//	reg.DeclareInputs(TrackingNo)
//	reg.Register(dag.Step{
//		Name:   "fetch_waybill",
//		Reads:  []dag.AnyKey{TrackingNo},
//		Writes: []dag.AnyKey{Waybill},
//		Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
//			wb, err := orders.Waybill(ctx, dag.Get(in, TrackingNo))
//			if err != nil {
//				return dag.Retryable(err) // only marked errors are retried
//			}
//			dag.Set(out, Waybill, wb)
//			return nil
//		},
//	})
//	cfg, err := dag.ParseConfig(yamlBytes)
//	plan, err := dag.Compile(cfg, reg)       // *ValidationError lists all problems
//	res, err := dag.Run(ctx, plan, []dag.Value{TrackingNo.Bind(tn)}, dag.Options{})
//	chute, ok := dag.Output(res, Chute)
//
// # Running
//
// Nodes whose dependencies are done run in parallel (Options.MaxParallel
// caps them); Options.Sequential runs them one by one in Plan.Nodes order,
// the legacy baseline. Each node's context ends at the sooner of its timeout
// (covering all its attempts) and the run deadline (the flow deadline or the
// caller's, whichever is sooner). The engine never abandons a goroutine: Run
// returns when every started step has returned, so steps must honour ctx.
//
// A fatal node failure cancels the run's context (running siblings see it,
// nodes not yet started never start) and Run returns a *NodeError naming the
// node and matching ErrStepFailed plus a kind: ErrTimeout (the node's own
// timeout), ErrDeadline, ErrCanceled, ErrPanic, ErrUndeclaredKey,
// ErrCondition, and the step's own error. A degradable node's failure
// instead writes its configured fallback values and is listed in
// Result.Degraded; the run deadline passing is always fatal, and so is an
// error with a `StopsRun() bool` method returning true (see StopsRun): an
// outcome such as "parcel cancelled" that no fallback may paper over. Errors are
// retried only when the classifier says so (IsRetryable by default, which
// honours Retryable and any error with a `Retryable() bool` method).
//
// # Absent values
//
// A node whose condition is false is skipped, as is an effectful node in a
// dry run (Options.DryRun, for shadow runs); their keys stay absent, and so
// do keys of a degraded node without a fallback for them. Dependents still
// run: Get returns the zero value of an absent key, and Lookup reports
// presence, so a step that reads another node's output that might be
// skipped must use Lookup.
//
// # Conditions
//
// A condition is an expr-lang expression (https://expr-lang.org), compiled
// and type-checked once by Compile, evaluated just before the node runs. It
// sees the flow inputs and the keys written by the node's ancestors, each by
// its key name. Struct fields are reached by their `expr:"name"` tag, or by
// the Go field name without one; maps by key. So for
//
//	type Waybill struct {
//		CODAmount int64  `expr:"cod_amount" json:"cod_amount"`
//		Market    string `expr:"market" json:"market"`
//	}
//
// `waybill.cod_amount > 0 && waybill.market in ["BR", "MX"]` works. An absent
// key appears as its type's zero value; for a pointer type that is nil, so
// write `waybill?.cod_amount ?? 0`. A key named like an expr keyword (in,
// not, and, or, let, nil, ...) cannot appear in a condition. An evaluation
// error fails the node (ErrCondition). Fallback values are decoded with
// encoding/json rules, so they use json tags.
//
// # Trace, results, metrics
//
// Every run yields a Trace (always on; it costs two clock reads per node and
// one pass over the graph): per node the start offset, duration, outcome,
// attempts and slack, plus the critical path. It marshals to JSON with
// stable snake_case names for the API and the ops waterfall. Result keeps
// every value written: Output reads one key, NodeOutputs the keys one node
// wrote, and FirstDiff finds the first key where two runs differ (shadow
// reconciliation). Metrics, when given, records per flow and node latency
// histograms and outcome counters on the caller's Registerer.
//
// # What it must never do
//
// Import anything of ours (sorting, packing, station, clients): the
// dependency points one way, into dag. Know about parcels, markets or any
// domain type: those live behind keys and steps. Hold global state or
// register metrics on a global registry. Leave a goroutine running after
// Run returns, or let a step's panic escape. Apply half of an invalid
// config: Compile yields a whole Plan or none.
package dag
