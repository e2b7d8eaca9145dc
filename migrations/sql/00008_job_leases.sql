-- +goose Up
-- Leases for singleton jobs (package station/lease): at most one instance
-- holds a name at a time. Times are the database's, never an instance's
-- clock. fence grows by one on every acquisition, so a holder that lost the
-- lease (paused, cut off) is told apart from its successor: guarded writes
-- check name, holder and fence under FOR SHARE in their own transaction.
-- ran_at is when the job last ran under any holder (set at the first
-- acquisition ever, which starts the schedule), so a periodic job keeps its
-- period across deployments and takeovers instead of running again at once.
CREATE TABLE job_leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    fence       bigint NOT NULL CHECK (fence > 0),
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    renewed_at  timestamptz NOT NULL DEFAULT now(),
    ran_at      timestamptz
);

-- The outbox pruning job deletes delivered events by age; without this it
-- would scan the whole outbox every run.
CREATE INDEX tracking_outbox_delivered ON tracking_outbox (delivered_at) WHERE status = 'delivered';

-- +goose Down
DROP INDEX tracking_outbox_delivered;
DROP TABLE job_leases;
