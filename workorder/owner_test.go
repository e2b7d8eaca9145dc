package workorder_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writesOwnTable matches SQL that changes a table package workorder owns:
// INSERT, UPDATE, DELETE, TRUNCATE, and pgx's CopyFrom by identifier.
var writesOwnTable = regexp.MustCompile(`(?is)\b(?:insert\s+into|update|delete\s+from|truncate(?:\s+table)?)\s+(?:only\s+)?"?(work_orders|tracking_outbox)\b` +
	`|pgx\.Identifier\{\s*"(work_orders|tracking_outbox)"`)

// foreignWriters lists the non-test Go files under root, outside root's
// workorder/ directory, that contain SQL writing work_orders or
// tracking_outbox, as "path: match".
func foreignWriters(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "workorder" || strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range writesOwnTable.FindAllString(string(src), -1) {
			found = append(found, rel+": "+strings.Join(strings.Fields(m), " "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestOnlyWorkorderWritesItsTables: package workorder is the one door to
// work_orders and tracking_outbox (the write, the relay's claim and
// settlement, ops re-drives, pruning). Any other package that writes them
// by SQL fails here; tests may set rows up directly.
func TestOnlyWorkorderWritesItsTables(t *testing.T) {
	if found := foreignWriters(t, ".."); len(found) > 0 {
		t.Fatalf("SQL writing work_orders or tracking_outbox outside package workorder:\n  %s",
			strings.Join(found, "\n  "))
	}
}

// TestOwnerCheckCatchesAForeignWriter proves the check above is not
// vacuous: a module with such a file outside workorder/ is reported, the
// same SQL inside workorder/ or in a test file is not.
func TestOwnerCheckCatchesAForeignWriter(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"station/relay/bad.go":      "package relay\nconst q = `UPDATE tracking_outbox SET status = 'delivered'`\n",
		"station/app/bad.go":        "package app\nconst q = `delete\n\tfrom  work_orders where true`\n",
		"packing/copy.go":           "package packing\nvar t = pgx.Identifier{\"tracking_outbox\"}\n",
		"sorting/reads.go":          "package sorting\nconst q = `SELECT 1 FROM work_orders JOIN tracking_outbox o ON true`\n",
		"sorting/other.go":          "package sorting\nconst q = `UPDATE work_orders_archive SET x = 1`\n",
		"workorder/outbox.go":       "package workorder\nconst q = `DELETE FROM tracking_outbox`\n",
		"station/relay/bad_test.go": "package relay\nconst q = `INSERT INTO work_orders VALUES (1)`\n",
	}
	for name, src := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := foreignWriters(t, root)
	want := []string{
		"packing/copy.go: pgx.Identifier{\"tracking_outbox\"",
		"station/app/bad.go: delete from work_orders",
		"station/relay/bad.go: UPDATE tracking_outbox",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("found %q, want %q", got, want)
	}
}
