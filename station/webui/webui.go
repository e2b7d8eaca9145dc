package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// static holds the pages and their assets. go:embed needs a package-level
// variable; it is read-only data, never state.
//
//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every answer. Everything comes from
// this server: scripts and styles only from files (no inline code), images
// also from blob: URLs (the bag label preview is fetched with the bearer
// token and shown from a blob), no framing, no plugins.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	name  string // for ServeContent's type sniffing fallback
	body  []byte
	ctype string
	etag  string
}

// contentType is set explicitly: module scripts must be served as
// JavaScript, and the host's mime database may not know every extension.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// Handler serves the terminal at /, the ops console at /ops, the
// supervisors' floor at /floor, the terminal's
// service worker at /sw.js (at the root, so its scope is the whole site)
// and the files under /assets/. Register it on the least specific pattern ("/") so every
// API route keeps priority. Only GET and HEAD are answered.
func Handler() http.Handler {
	// The files are compiled in, so reading them cannot fail at run time;
	// a file that could not be read would answer 404, and the tests (which
	// fetch every file the pages name) would fail.
	files := map[string]asset{}
	_ = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(body)
		files[strings.TrimPrefix(p, "static")] = asset{name: path.Base(p), body: body, ctype: contentType(p),
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if sw, ok := files["/sw.js"]; ok {
		files["/sw.js"] = serviceWorker(sw, files)
	}
	pages := map[string]string{"/": "/index.html", "/ops": "/ops.html", "/ops/": "/ops.html", "/floor": "/floor.html",
		"/floor/": "/floor.html", "/sw.js": "/sw.js"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := r.URL.Path
		if page, ok := pages[name]; ok {
			name = page
		} else if !strings.HasPrefix(name, "/assets/") {
			http.NotFound(w, r)
			return
		}
		a, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		// Revalidate every time: a new binary's pages take effect at once,
		// and an unchanged file costs a 304.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
	})
}

// serviceWorker writes into sw.js what it keeps on the device: the terminal
// page and every file under /assets/, and a version, a hash of all of them.
// A binary with any file changed serves a different sw.js, which the
// browser installs as a new worker with a new cache.
func serviceWorker(sw asset, files map[string]asset) asset {
	var assets []string
	for name := range files {
		if strings.HasPrefix(name, "/assets/") {
			assets = append(assets, name)
		}
	}
	sort.Strings(assets)
	h := sha256.New()
	for _, name := range append([]string{"/index.html"}, assets...) {
		h.Write([]byte(name + "\x00" + files[name].etag + "\n"))
	}
	list, _ := json.Marshal(append([]string{"/"}, assets...))
	body := bytes.Replace(sw.body, []byte("__STATION_ASSETS_VERSION__"), []byte(hex.EncodeToString(h.Sum(nil)[:8])), 1)
	body = bytes.Replace(body, []byte("__STATION_ASSETS__"), list, 1)
	sum := sha256.Sum256(body)
	return asset{name: sw.name, body: body, ctype: sw.ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}
