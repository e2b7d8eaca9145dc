// Package logging builds the process's zap logger. Production logging
// samples repeated lines (the first 100 of a message per second, then one in
// 100) so that a flood of one error cannot drown the disk; security lines
// (refusals, logins, key and rule changes) are exempt, because a sampled
// audit trail hides exactly the attack that floods it. A logger is a
// security logger when its name has the segment "security": build one with
// Security. It must never be given secrets (passwords, tokens, keys).
package logging

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// SecurityName is the logger name segment that exempts lines from sampling.
const SecurityName = "security"

// Security is l's security logger: its lines are never sampled.
func Security(l *zap.Logger) *zap.Logger { return l.Named(SecurityName) }

// IsSecurity says whether a logger name (dot-separated, as zap builds it)
// marks security lines.
func IsSecurity(loggerName string) bool {
	for _, seg := range strings.Split(loggerName, ".") {
		if seg == SecurityName {
			return true
		}
	}
	return false
}

// Sampling of production logs: per message and level, per second.
const (
	sampleTick       = time.Second
	sampleFirst      = 100
	sampleThereafter = 100
)

// New builds the logger: format "json" (production: sampled, stack traces
// from error level) or "console" (development, unsampled), writing to out.
func New(format, level string, out zapcore.WriteSyncer, opts ...zap.Option) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	var enc zapcore.Encoder
	var core zapcore.Core
	switch format {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
		core = zapcore.NewCore(enc, out, lvl)
		opts = append([]zap.Option{zap.Development(), zap.AddCaller()}, opts...)
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey, ec.EncodeTime = "time", zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
		core = SampledExceptSecurity(zapcore.NewCore(enc, out, lvl))
		opts = append([]zap.Option{zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)}, opts...)
	default:
		return nil, fmt.Errorf("log.format %q: must be json or console", format)
	}
	return zap.New(core, append(opts, zap.ErrorOutput(out))...), nil
}

// SampledExceptSecurity samples core's entries as production logging does,
// except those of security loggers, which all go through.
func SampledExceptSecurity(core zapcore.Core) zapcore.Core {
	return &securityCore{
		sampled: zapcore.NewSamplerWithOptions(core, sampleTick, sampleFirst, sampleThereafter),
		all:     core,
	}
}

// securityCore routes each entry by its logger name: security entries to
// the core itself, every other through the sampler.
type securityCore struct {
	sampled, all zapcore.Core
}

func (c *securityCore) Enabled(l zapcore.Level) bool { return c.all.Enabled(l) }

func (c *securityCore) With(fields []zapcore.Field) zapcore.Core {
	return &securityCore{sampled: c.sampled.With(fields), all: c.all.With(fields)}
}

func (c *securityCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if IsSecurity(e.LoggerName) {
		return c.all.Check(e, ce)
	}
	return c.sampled.Check(e, ce)
}

// Write is only reached through Check, which hands the entry to an inner
// core; it is here to satisfy zapcore.Core.
func (c *securityCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.all.Write(e, fields)
}

func (c *securityCore) Sync() error { return c.all.Sync() }
