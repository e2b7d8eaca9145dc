package dag

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a flow as an operator writes it (YAML or JSON), before Compile.
// It is plain data: it can be built in Go, stored in a database row, and
// marshalled back to JSON or YAML to show ops what runs.
//
//	name: sort-sg
//	version: "7"
//	deadline: 300ms
//	inputs: [tracking_no, station_id]
//	nodes:
//	  - step: fetch_waybill
//	    timeout: 120ms
//	    retry: {attempts: 3, backoff: 10ms}
//	  - step: check_billing
//	    depends_on: [fetch_waybill]
//	    condition: waybill.cod_amount > 0
//	    criticality: degradable
//	    fallback: {billing_ok: true}
type Config struct {
	Name    string `json:"name" yaml:"name"`
	Version string `json:"version" yaml:"version"`
	// Deadline bounds the whole run; zero means only the caller's context
	// bounds it.
	Deadline Duration `json:"deadline,omitempty" yaml:"deadline,omitempty"`
	// Inputs are the keys the caller passes to Run (declared, with their
	// types, by Registry.DeclareInputs). Run rejects a call missing one.
	Inputs []string     `json:"inputs,omitempty" yaml:"inputs,omitempty"`
	Nodes  []NodeConfig `json:"nodes" yaml:"nodes"`
}

// NodeConfig places one step in the graph.
type NodeConfig struct {
	// ID names the node; it defaults to Step. Two nodes may run the same
	// step (with different Params) if the step writes no keys, since a key
	// has one producer.
	ID   string `json:"id,omitempty" yaml:"id,omitempty"`
	Step string `json:"step" yaml:"step"`
	// DependsOn lists node ids that must finish before this node starts.
	// A node may read only keys produced by its ancestors.
	DependsOn []string `json:"depends_on,omitempty" yaml:"depends_on,omitempty"`
	// Timeout bounds the node, all attempts and backoffs included; the run
	// deadline still applies. Zero means the run deadline only.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Retry   Retry    `json:"retry,omitzero" yaml:"retry,omitempty"`
	// Criticality overrides the step's default: "fatal" or "degradable".
	Criticality string `json:"criticality,omitempty" yaml:"criticality,omitempty"`
	// Fallback gives, per output key, the value a degradable node writes
	// when it fails. Values are decoded into the key's type with
	// encoding/json rules (json struct tags). Keys without a fallback are
	// absent after a failure.
	Fallback map[string]any `json:"fallback,omitempty" yaml:"fallback,omitempty"`
	// Condition is an expr-lang expression over the keys visible to the
	// node (flow inputs and its ancestors' outputs); the node runs only when
	// it is true. See the package doc for how values appear in it.
	Condition string `json:"condition,omitempty" yaml:"condition,omitempty"`
	// Params are handed to the step (Inputs.Params), read only.
	Params map[string]any `json:"params,omitempty" yaml:"params,omitempty"`
}

// Retry configures attempts of a node. Only errors the run's classifier
// deems retryable (see Retryable) are retried.
type Retry struct {
	// Attempts is the total number of tries, first included; 0 means 1.
	Attempts int `json:"attempts,omitempty" yaml:"attempts,omitempty"`
	// Backoff is the wait before the second try; it doubles for each later
	// one, capped by MaxBackoff when set. A retry whose wait would outlast
	// the node's remaining time is not made.
	Backoff    Duration `json:"backoff,omitempty" yaml:"backoff,omitempty"`
	MaxBackoff Duration `json:"max_backoff,omitempty" yaml:"max_backoff,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("150ms",
// "2s") in configs.
type Duration time.Duration

// MarshalText writes the Go duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads the Go duration syntax. A bare number is rejected (is
// it seconds or milliseconds?) except 0.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, like 150ms or 2s", s)
	}
	*d = Duration(v)
	return nil
}

// Std is d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// maxConfigBytes bounds what ParseConfig reads: a flow is a page of YAML, and
// a bound keeps hostile input from costing memory.
const maxConfigBytes = 1 << 20

// ParseConfig reads a flow config in YAML or JSON (JSON is YAML). Unknown
// fields are rejected, so a typo like `depend_on` is an error and not a
// silently dropped dependency. It checks syntax only; Compile validates.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if len(data) > maxConfigBytes {
		return cfg, fmt.Errorf("dag: flow config is %d bytes, over the %d limit: %w", len(data), maxConfigBytes, ErrInvalidFlow)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("dag: flow config is empty: %w", ErrInvalidFlow)
		}
		return Config{}, fmt.Errorf("dag: parse flow config: %v: %w", err, ErrInvalidFlow)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("dag: flow config holds more than one YAML document: %w", ErrInvalidFlow)
	}
	return cfg, nil
}
