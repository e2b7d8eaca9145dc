package migrations_test

import (
	"context"
	"database/sql"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/expresshub/station/migrations"
	"github.com/expresshub/station/migrations/dbtest"
)

func TestUpDownUpOnARealDatabase(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("pgx", dbtest.EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := migrations.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Current(ctx); err != nil || ok {
		t.Fatalf("empty database reported current (%v, %v)", ok, err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	newest, err := m.Version(ctx)
	if err != nil || newest == 0 {
		t.Fatalf("version after up = %d, %v", newest, err)
	}
	if ok, _ := m.Current(ctx); !ok {
		t.Fatal("not current after up")
	}
	// Every migration can be undone, one by one, down to an empty schema.
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	var tables int
	if err := db.QueryRowContext(ctx,
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'goose_db_version'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("%d tables left after rolling everything back", tables)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if v, _ := m.Version(ctx); v != newest {
		t.Fatalf("version after up again = %d, want %d", v, newest)
	}
	st, err := m.Status(ctx)
	if err != nil || len(st) == 0 {
		t.Fatalf("status: %v", err)
	}
}
