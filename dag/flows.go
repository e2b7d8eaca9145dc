package dag

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Flows holds compiled plans by name and version, and which version of each
// name is current. Readers never lock: the whole table sits behind an atomic
// pointer and a publish swaps in a new copy, so a run that fetched a plan
// keeps it to the end while new runs get the new one.
type Flows struct {
	mu    sync.Mutex // serializes writers
	table atomic.Pointer[flowTable]
}

type flowTable map[string]*flowVersions

type flowVersions struct {
	current  *Plan
	versions map[string]*Plan
	order    []string // publish order
}

// NewFlows returns an empty table.
func NewFlows() *Flows {
	f := &Flows{}
	f.table.Store(&flowTable{})
	return f
}

// Publish adds p and makes it the current version of its flow. Versions are
// immutable: publishing a version twice fails with ErrVersionExists.
func (f *Flows) Publish(p *Plan) error {
	if p == nil {
		return fmt.Errorf("dag: publish without a plan: %w", ErrInvalidFlow)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.table.Load()
	fv := old[p.name]
	if fv != nil && fv.versions[p.version] != nil {
		return fmt.Errorf("dag: flow %q version %q: %w", p.name, p.version, ErrVersionExists)
	}
	next := &flowVersions{current: p, versions: map[string]*Plan{p.version: p}, order: []string{p.version}}
	if fv != nil {
		next.versions = maps.Clone(fv.versions)
		next.versions[p.version] = p
		next.order = append(slices.Clone(fv.order), p.version)
	}
	f.swap(old, p.name, next)
	return nil
}

// Activate makes an already published version current again (a rollback).
func (f *Flows) Activate(name, version string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.table.Load()
	fv := old[name]
	if fv == nil || fv.versions[version] == nil {
		return fmt.Errorf("dag: flow %q version %q: %w", name, version, ErrUnknownFlow)
	}
	next := *fv
	next.current = fv.versions[version]
	f.swap(old, name, &next)
	return nil
}

func (f *Flows) swap(old flowTable, name string, fv *flowVersions) {
	t := maps.Clone(old)
	if t == nil {
		t = flowTable{}
	}
	t[name] = fv
	f.table.Store(&t)
}

// Get returns the current plan of the named flow.
func (f *Flows) Get(name string) (*Plan, error) {
	if fv := (*f.table.Load())[name]; fv != nil {
		return fv.current, nil
	}
	return nil, fmt.Errorf("dag: flow %q: %w", name, ErrUnknownFlow)
}

// GetVersion returns a specific published version.
func (f *Flows) GetVersion(name, version string) (*Plan, error) {
	if fv := (*f.table.Load())[name]; fv != nil {
		if p := fv.versions[version]; p != nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("dag: flow %q version %q: %w", name, version, ErrUnknownFlow)
}

// FlowInfo describes a flow in the table.
type FlowInfo struct {
	Name     string   `json:"name"`
	Current  string   `json:"current"`
	Versions []string `json:"versions"` // in publish order
}

// List describes every flow, sorted by name.
func (f *Flows) List() []FlowInfo {
	t := *f.table.Load()
	out := make([]FlowInfo, 0, len(t))
	for _, name := range sortedKeys(t) {
		fv := t[name]
		out = append(out, FlowInfo{Name: name, Current: fv.current.version, Versions: slices.Clone(fv.order)})
	}
	return out
}
