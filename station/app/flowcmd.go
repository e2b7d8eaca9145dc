package app

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
)

// PublishFlow is `station flow publish`: it compiles src with the start-up
// compile, stores it as the next version of its flow (audited as actor) and
// signals the running instances on Redis; an instance that misses the
// signal picks the version up at its next resync. The steps never run here,
// so no downstream connection is made.
func PublishFlow(ctx context.Context, cfg config.Config, src []byte, actor, reason string) (sorting.Published, error) {
	parsed, err := dag.ParseConfig(src)
	if err != nil {
		return sorting.Published{}, err
	}
	db, err := OpenPool(ctx, cfg.Database)
	if err != nil {
		return sorting.Published{}, err
	}
	defer db.Close()
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB,
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer func() { _ = rdb.Close() }()
	flows, err := sorting.NewFlowSet(ctx, db, sorting.Downstream{}, sorting.NewChuteStore(db, time.Second),
		sorting.WithSignals(rdb, cfg.Redis.Prefix, zap.NewNop()))
	if err != nil {
		return sorting.Published{}, err
	}
	pub, err := flows.Publish(ctx, parsed.Name, src, actor, reason)
	if err != nil {
		return pub, fmt.Errorf("publish %s: %w", parsed.Name, err)
	}
	return pub, nil
}
