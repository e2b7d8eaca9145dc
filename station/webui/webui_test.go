package webui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/expresshub/station/station/webui"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPagesAndAssetsAreServedWithAStrictPolicy(t *testing.T) {
	h := webui.Handler()
	cases := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", "Station terminal"},
		{"/ops", "text/html; charset=utf-8", "Station ops console"},
		{"/ops/", "text/html; charset=utf-8", "Station ops console"},
		{"/assets/js/terminal.js", "text/javascript; charset=utf-8", "import"},
		{"/assets/css/station.css", "text/css; charset=utf-8", ":root"},
		{"/assets/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		r := get(t, h, "GET", c.path)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", c.path, r.StatusCode)
		}
		if got := r.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s: content type %q, want %q", c.path, got, c.ctype)
		}
		if got := r.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || strings.Contains(got, "unsafe") {
			t.Errorf("GET %s: CSP %q", c.path, got)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: missing hardening headers: %v", c.path, r.Header)
		}
		if b := body(t, r); !strings.Contains(b, c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
	}
}

func TestUnknownPathsAndWritesAreRefused(t *testing.T) {
	h := webui.Handler()
	for _, p := range []string{"/nope", "/assets/", "/assets/js/missing.js", "/index.html", "/assets/../webui.go", "/opsx"} {
		if r := get(t, h, "GET", p); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	r := get(t, h, "POST", "/")
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /: %d, Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
}

func TestAnUnchangedAssetIsRevalidatedWithItsETag(t *testing.T) {
	h := webui.Handler()
	first := get(t, h, "GET", "/assets/js/api.js")
	etag := first.Header.Get("ETag")
	if etag == "" || first.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("etag %q, cache-control %q", etag, first.Header.Get("Cache-Control"))
	}
	if r := get(t, h, "GET", "/assets/js/api.js", "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d", r.StatusCode)
	}
	if r := get(t, h, "HEAD", "/ops"); r.StatusCode != http.StatusOK {
		t.Fatalf("HEAD /ops: %d", r.StatusCode)
	}
}

// TestPagesReferenceOnlyTheirOwnFiles checks the sources: every script,
// style, image and module import is a path on this server that exists, and
// there is no inline script or style the policy would block.
func TestPagesReferenceOnlyTheirOwnFiles(t *testing.T) {
	h := webui.Handler()
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	imports := regexp.MustCompile(`(?m)^import\s[^'"]*['"]([^'"]+)['"]`)
	seen := map[string]bool{}
	var check func(path string)
	check = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		r := get(t, h, "GET", path)
		if r.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, r.StatusCode)
			return
		}
		b := body(t, r)
		// The SVG namespace is a name, not a place anything is fetched from.
		if n := strings.Count(b, "http://") + strings.Count(b, "https://"); n != strings.Count(b, "http://www.w3.org/2000/svg") {
			t.Errorf("%s names an absolute URL", path)
		}
		switch {
		case strings.HasSuffix(path, ".js"):
			if strings.Contains(b, "eval(") || strings.Contains(b, "new Function") || strings.Contains(b, "innerHTML") {
				t.Errorf("%s builds code or HTML from strings", path)
			}
			for _, m := range imports.FindAllStringSubmatch(b, -1) {
				check(resolve(path, m[1]))
			}
		case strings.HasSuffix(path, ".html") || path == "/" || path == "/ops" || path == "/floor":
			if strings.Contains(b, "<script>") || strings.Contains(b, "style=") || strings.Contains(b, "<style") || strings.Contains(b, " on") && regexp.MustCompile(`\son[a-z]+="`).MatchString(b) {
				t.Errorf("%s has inline script or style", path)
			}
			for _, m := range refs.FindAllStringSubmatch(b, -1) {
				if m[1] == "" {
					continue
				}
				if m[1] == "/" || m[1] == "/ops" || m[1] == "/floor" {
					check(m[1]) // a link to another of the pages
					continue
				}
				if !strings.HasPrefix(m[1], "/assets/") {
					t.Errorf("%s refers to %q", path, m[1])
					continue
				}
				check(m[1])
			}
		}
	}
	check("/")
	check("/ops")
	check("/floor")
	if len(seen) < 15 {
		t.Fatalf("only %d files reached from the pages", len(seen))
	}
}

func resolve(from, rel string) string {
	if strings.HasPrefix(rel, "/") {
		return rel
	}
	dir := from[:strings.LastIndex(from, "/")+1]
	return dir + strings.TrimPrefix(rel, "./")
}

// TestServiceWorkerKeepsEveryTerminalFile: the worker is served from the
// root (its scope is the whole site) as JavaScript, lists the terminal page
// and every file under /assets/ to keep, and names its cache after a hash
// of them; nothing is left of the placeholders the server fills in.
func TestServiceWorkerKeepsEveryTerminalFile(t *testing.T) {
	h := webui.Handler()
	r := get(t, h, "GET", "/sw.js")
	if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /sw.js: %d %q %q", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"))
	}
	sw := body(t, r)
	if strings.Contains(sw, "__STATION_") {
		t.Fatal("sw.js still has a placeholder")
	}
	version := regexp.MustCompile(`const VERSION = '([0-9a-f]{16})';`).FindStringSubmatch(sw)
	if version == nil {
		t.Fatalf("sw.js names no version:\n%s", sw)
	}
	list := regexp.MustCompile(`const FILES = (\[[^\]]*\]);`).FindStringSubmatch(sw)
	if list == nil {
		t.Fatal("sw.js lists no files")
	}
	var files []string
	if err := json.Unmarshal([]byte(list[1]), &files); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/", "/assets/js/terminal.js", "/assets/js/queue.js", "/assets/js/scanline.js", "/assets/css/station.css"} {
		if !slices.Contains(files, want) {
			t.Errorf("sw.js does not keep %s: %v", want, files)
		}
	}
	for _, f := range files {
		if r := get(t, h, "GET", f); r.StatusCode != http.StatusOK {
			t.Errorf("sw.js keeps %s, which answers %d", f, r.StatusCode)
		}
	}
	// The same files, the same worker: no needless reinstall.
	if again := body(t, get(t, webui.Handler(), "GET", "/sw.js")); again != sw {
		t.Fatal("two handlers over the same files serve different workers")
	}
}
