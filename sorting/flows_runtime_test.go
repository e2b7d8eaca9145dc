package sorting

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
)

func TestAPublishedVersionLeavesTheCompiledOnesAsTheyAre(t *testing.T) {
	ctx := context.Background()
	svc, _ := offlineService(t, 0)
	flows := svc.Flows()
	v1, err := flows.ForStation("SG-H01")
	if err != nil || v1.Version != 1 {
		t.Fatalf("before: %+v %v", v1, err)
	}
	fv, err := flows.FlowVersion(ctx, "full", 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := flows.Publish(ctx, "full", []byte(strings.Replace(fv.Config, "deadline: 800ms", "deadline: 700ms", 1)), "ops1", "faster")
	if err != nil || p.Version != 2 {
		t.Fatalf("publish: %+v %v", p, err)
	}
	if err := flows.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// A sort holding v1 keeps the very plan it started with.
	if again, _ := flows.Version("full", 1); again != v1 {
		t.Fatal("reload recompiled an immutable version")
	}
	if now, _ := flows.ForStation("SG-H01"); now.Version != 2 {
		t.Fatalf("the market follows the newest: got v%d", now.Version)
	}
	if _, err := flows.Assign(ctx, "SG", "full", 1, "ops1", "pin"); err != nil {
		t.Fatal(err)
	}
	if now, _ := flows.ForStation("SG-H01"); now != v1 {
		t.Fatalf("pinned to v1, got v%d", now.Version)
	}
	for _, info := range flows.List() {
		has := strings.Contains(strings.Join(info.Markets, ","), "SG")
		if info.Name == "full" && has != (info.Version == 1) {
			t.Fatalf("%s v%d lists markets %v", info.Name, info.Version, info.Markets)
		}
	}
	_, err = flows.Publish(ctx, "full", []byte("name: full\ninputs: [tracking_no, station_id]\nnodes:\n  - step: nope\n"), "ops1", "")
	f, ok := fault.As(err)
	if !errors.Is(err, ErrInvalidFlow) || !ok {
		t.Fatalf("invalid: %v", err)
	}
	if problems, _ := f.Details["problems"].([]dag.Problem); len(problems) != 1 || problems[0].Node != "nope" {
		t.Fatalf("problems %v", f.Details)
	}
	if n, _ := flows.FlowVersion(ctx, "full", 0); n.Version != 2 {
		t.Fatalf("a refused publication stored v%d", n.Version)
	}
}
