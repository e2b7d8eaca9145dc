// Package migrations owns the database schema: numbered SQL files embedded in
// the binary and applied with goose. The schema changes only through a new
// file here; no other package issues DDL.
//
// Each file has an Up and a Down section so `station migrate down` can step
// back one version; a migration is never edited once it has shipped.
package migrations
