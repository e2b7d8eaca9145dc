package webui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// The browser suite drives the real pages in Debian's headless Chromium
// against a whole station (stationtest): one station and one browser for
// the suite, a fresh browser context (empty storage) per subtest.

const (
	chromiumPath = "/usr/bin/chromium"  // Debian's package; STATION_TEST_CHROMIUM overrides
	artifactDir  = "testdata/artifacts" // gitignored: screenshots for people to look at
	waitFor      = 15 * time.Second
)

type browser struct {
	ctx  context.Context
	st   *stationtest.Station
	url  string // where the pages are opened: the station, or a front in front of it
	host string
}

func startBrowser(t *testing.T, st *stationtest.Station) *browser {
	t.Helper()
	return startBrowserAt(t, st, st.URL)
}

// startBrowserAt opens the pages at base, which serves st (a front that
// can play a server that is down, say).
func startBrowserAt(t *testing.T, st *stationtest.Station, base string) *browser {
	t.Helper()
	path := chromiumPath
	if p, err := exec.LookPath("chromium"); err == nil {
		path = p
	}
	if p := os.Getenv("STATION_TEST_CHROMIUM"); p != "" {
		path = p
	}
	// A missing browser fails: CI installs Debian's chromium, and a skip
	// would hide that the pages were never tested.
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the browser tests need Chromium at %s (apt-get install chromium): %v", path, err)
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(360, 640),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("mute-audio", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{ctx: ctx, st: st, url: base, host: u.Host}
}

// tab is one page in its own browser context, at 360x640.
type tab struct {
	t   *testing.T
	b   *browser
	ctx context.Context

	mu       sync.Mutex
	requests []string
	problems []string
}

func (b *browser) tab(t *testing.T) *tab {
	t.Helper()
	tb := &tab{t: t, b: b}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.listen))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 640, chromedp.EmulateMobile)); err != nil {
		cancel()
		t.Fatalf("open tab: %v", err)
	}
	tctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	tb.ctx = tctx
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		tb.checkRequests()
	})
	return tb
}

// listen runs in the tab's event loop: it only records.
func (tb *tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.URL)
	case *runtime.EventExceptionThrown:
		text := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			text += " " + ev.ExceptionDetails.Exception.Description
		}
		tb.problems = append(tb.problems, "uncaught: "+text)
	case *cdplog.EventEntryAdded:
		if strings.Contains(ev.Entry.Text, "Content Security Policy") {
			tb.problems = append(tb.problems, "CSP: "+ev.Entry.Text)
		}
	}
}

// checkRequests fails the test for any request that did not go to the
// station under test, and for script errors and CSP violations.
func (tb *tab) checkRequests() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.requests) == 0 {
		tb.t.Error("no requests seen: is the network listener working?")
	}
	for _, raw := range tb.requests {
		u, err := url.Parse(raw)
		if err != nil {
			tb.t.Errorf("unparsable request URL %q", raw)
			continue
		}
		switch u.Scheme {
		case "data", "blob":
			continue
		case "http", "https":
			if u.Host == tb.b.host {
				continue
			}
		}
		tb.t.Errorf("the page fetched %s: only %s may be asked", raw, tb.b.host)
	}
	for _, p := range tb.problems {
		tb.t.Errorf("page problem: %s", p)
	}
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, steps...); err != nil {
		tb.failed()
		tb.t.Fatal(err)
	}
}

// wait polls a JavaScript condition in the page until it is true.
func (tb *tab) wait(what, js string) {
	tb.t.Helper()
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool]("!!("+js+")", chromedp.WithPollingTimeout(waitFor), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		tb.failed()
		page := tb.text("main, #login-view")
		if len(page) > 1500 {
			page = page[:1500] + "…"
		}
		tb.t.Fatalf("waiting for %s (%s): %v; page says: %s", what, js, err, page)
	}
}

// failed saves what the page looked like when a test gave up on it.
func (tb *tab) failed() {
	name := "failed-" + strings.NewReplacer("/", "-", " ", "_").Replace(tb.t.Name())
	if png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(artifactDir, name+".png"), png, 0o644)
	}
}

func (tb *tab) text(css string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`Array.from(document.querySelectorAll(%q)).filter(n => !n.closest('[hidden]')).map(n => n.innerText).join(' | ')`, css)))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

// shot saves the visible 360x640 screen as testdata/artifacts/name.png.
func (tb *tab) shot(name string) { tb.capture(name, false) }

// longShot also saves the whole page, 360 wide, as name-full.png, for a
// screen whose content goes on below the fold.
func (tb *tab) longShot(name string) { tb.capture(name, true) }

func (tb *tab) capture(name string, full bool) {
	tb.t.Helper()
	// Let layout and scrolling settle: two animation frames.
	tb.do(chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r())))`, chromedp.EvalAwaitPromise))
	png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(artifactDir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	if !full {
		return
	}
	whole, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("full screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(artifactDir, name+"-full.png"), whole, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// desktop switches the tab to a 1280x800 desktop screen.
func (tb *tab) desktop() {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(1280, 800))
}

func (tb *tab) scrollTo(id string) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).scrollIntoView({block: 'start'})`, id)))
}

// login opens page ("/" or "/ops") and logs in with the keyboard.
func (tb *tab) login(page, operator string) {
	tb.t.Helper()
	tb.do(
		chromedp.Navigate(tb.b.url+page),
		chromedp.WaitVisible(chromedp.ID("login-operator")),
		chromedp.SendKeys(chromedp.ID("login-operator"), operator),
		chromedp.SendKeys(chromedp.ID("login-password"), stationtest.Password+"\n"),
	)
	tb.wait("the app after login", `!document.getElementById('app-view').hidden`)
}

// sortScan scans code on the sort screen and waits for the answer about
// tn. On a machine too busy for the flow's step timeouts the terminal
// rightly says to scan again later; so does the test, twice at most.
func (tb *tab) sortScan(code, tn string) {
	tb.t.Helper()
	for try := 0; ; try++ {
		tb.scan("scan-input", code)
		tb.wait("the answer about "+tn, fmt.Sprintf(`document.getElementById('answer').dataset.trackingNo === %q && document.getElementById('answer').dataset.state !== 'idle'`, tn))
		if try == 2 || eval[string](tb, `document.getElementById('answer').dataset.code`) != sorting.CodeDownstreamUnavailable {
			return
		}
		tb.scan("scan-input", "ACK") // the exception holds the line until acknowledged
	}
}

// view switches the ops console to a view with its tab and waits until
// the view has loaded afresh.
func (tb *tab) view(name string) {
	tb.t.Helper()
	js := fmt.Sprintf(`Number(document.getElementById('%s-view').dataset.loads || 0)`, name)
	before := eval[int](tb, js)
	tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`nav button[data-view=%q]`, name))))
	tb.wait("the "+name+" view", fmt.Sprintf(`%s > %d && document.getElementById('%s-view').dataset.state === 'ready'`, js, before, name))
}

// scan types a code into a field and presses Enter, like a scanner.
func (tb *tab) scan(id, code string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.ID(id), code+"\n"))
}

func (tb *tab) offline(off bool) {
	tb.t.Helper()
	conds := []*network.Conditions{}
	if off {
		conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	tb.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: conds,
		}); err != nil {
			return err
		}
		// navigator.onLine and the online/offline events follow this one.
		_, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: off, DownloadThroughput: -1, UploadThroughput: -1,
		})
		return err
	}))
}

func TestTerminalAndConsoleInABrowser(t *testing.T) {
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		// Shadow runs record the mismatches the console shows; on a busy
		// machine under -race they must not hit their deadline.
		c.Release.ShadowDeadline = 10 * time.Second
	}})
	b := startBrowser(t, st)
	op := st.Login("op1")
	fx := st.Sim.Fixtures()
	warmUp(t, st, op)

	t.Run("LoginShowsStationAndRole", func(t *testing.T) {
		tb := b.tab(t)
		tb.do(chromedp.Navigate(st.URL+"/"), chromedp.WaitVisible(chromedp.ID("login-operator")))
		tb.shot("terminal-login")
		tb.do(chromedp.SendKeys(chromedp.ID("login-operator"), "op1"), chromedp.SendKeys(chromedp.ID("login-password"), "wrong\n"))
		tb.wait("the refusal", `!document.getElementById('login-error').hidden`)
		if got := tb.text("#login-error"); !strings.Contains(got, "wrong") {
			t.Fatalf("login error says %q", got)
		}
		tb.login("/", "op1")
		if got := tb.text("#station") + " " + tb.text("#role"); got != "SG-H01 Operator" {
			t.Fatalf("top bar shows %q", got)
		}
		if id := eval[string](tb, `document.activeElement.id`); id != "scan-input" {
			t.Fatalf("focus on %q, want the scan field", id)
		}
		// The browser named itself as a terminal, once, and the session is
		// bound to that name server-side (the per-terminal rate limit).
		terminal := eval[string](tb, `localStorage.getItem('station.terminal.v1') || ''`)
		if n := st.Count(`SELECT count(*) FROM auth_tokens WHERE operator_id = 'op1' AND terminal_id = $1`, terminal); terminal == "" || n == 0 {
			t.Fatalf("terminal id %q in the browser, %d sessions bound to it", terminal, n)
		}
		// The console is for ops only.
		tb.do(
			chromedp.Navigate(st.URL+"/ops"),
			chromedp.WaitVisible(chromedp.ID("login-operator")),
			chromedp.SendKeys(chromedp.ID("login-operator"), "op1"),
			chromedp.SendKeys(chromedp.ID("login-password"), stationtest.Password+"\n"),
		)
		tb.wait("the console's refusal", `document.getElementById('login-error').textContent.includes('ops role')`)
		if !eval[bool](tb, `document.getElementById('app-view').hidden`) {
			t.Fatal("an operator got into the ops console")
		}
		tb.shot("ops-login-refused")
	})

	t.Run("SortShowsChuteAndAnExceptionInWords", func(t *testing.T) {
		tb := b.tab(t)
		tb.login("/", "op1")
		tn := sim.ViaStation("SG-H01", 0)
		tb.sortScan(strings.ToLower(tn), tn)
		if state := eval[string](tb, `document.getElementById('answer').dataset.state`); state != "ok" {
			t.Fatalf("sort answer %s: %s", state, tb.text("#answer"))
		}
		var res sorting.Result
		st.Do("GET", "/api/v1/sort/"+tn, op, nil, http.StatusOK, &res)
		if got := eval[string](tb, `document.getElementById('answer').dataset.chute`); got != fmt.Sprint(res.Chute) {
			t.Fatalf("screen shows chute %s, the station sorted to %d", got, res.Chute)
		}
		if got := tb.text("#answer-sub"); res.NextHop == nil || !strings.Contains(got, *res.NextHop) {
			t.Fatalf("screen shows %q, next hop %v", got, res.NextHop)
		}
		tb.shot("terminal-sort")

		exc := stationtest.Parcel(fx, "SG-H01", sim.Cancelled, 0)
		tb.sortScan(exc, exc)
		if code := eval[string](tb, `document.getElementById('answer').dataset.code`); code != sorting.CodeCancelled {
			t.Fatalf("exception code %q", code)
		}
		if got := tb.text("#answer-sub"); !strings.Contains(got, "Cancelled") {
			t.Fatalf("reason in words: %q", got)
		}
		if beep := eval[string](tb, `document.documentElement.dataset.lastBeep`); beep != "exception" {
			t.Fatalf("last sound %q, want the exception beep", beep)
		}
		if n := eval[int](tb, `document.querySelectorAll('#recent li').length`); n < 2 {
			t.Fatalf("%d scans listed", n)
		}
		if id := eval[string](tb, `document.activeElement.id`); id != "scan-input" {
			t.Fatalf("focus on %q after scanning", id)
		}
		tb.shot("terminal-sort-exception")
		// The exception holds the scan line; Enter on the empty box
		// acknowledges it.
		if held := eval[string](tb, `document.getElementById('answer').dataset.held`); held != "true" {
			t.Fatalf("the exception is not held on screen (held=%q)", held)
		}
		tb.scan("scan-input", "")
		tb.wait("the acknowledgement", `document.body.dataset.held === '0' && document.getElementById('answer').dataset.held === 'false'`)

		// Receive, reached with the keyboard.
		tb.do(chromedp.KeyEvent("1", chromedp.KeyModifiers(chromedp.ModifierAlt)))
		tb.wait("the receive screen", `document.body.dataset.mode === 'receive'`)
		rcv := sim.ViaStation("SG-H01", 1)
		tb.scan("scan-input", rcv)
		tb.wait("the receipt", fmt.Sprintf(`document.getElementById('answer').dataset.trackingNo === %q && document.getElementById('answer').dataset.state === 'ok'`, rcv))
		if n := st.Count(`SELECT count(*) FROM receipts WHERE tracking_no = $1`, rcv); n != 1 {
			t.Fatalf("%d receipts", n)
		}
		tb.shot("terminal-receive")
		tb.desktop()
		tb.shot("desktop-terminal-receive")
	})

	t.Run("OfflineScansAreQueuedAndLandExactlyOnce", func(t *testing.T) {
		tb := b.tab(t)
		tb.login("/", "op1")
		tns := []string{sim.ViaStation("SG-H01", 2), sim.ViaStation("SG-H01", 3)}
		tb.offline(true)
		for _, tn := range tns {
			tb.scan("scan-input", tn)
			tb.wait("the queued answer", fmt.Sprintf(`document.getElementById('answer').dataset.trackingNo === %q && document.getElementById('answer').dataset.state === 'queued'`, tn))
		}
		tb.wait("the queue length", `document.getElementById('queue').dataset.length === '2'`)
		tb.shot("terminal-offline-queue")
		if n := st.Count(`SELECT count(*) FROM work_orders WHERE tracking_no = ANY($1)`, tns); n != 0 {
			t.Fatalf("%d work orders while offline", n)
		}
		scanIDs := eval[[]string](tb, `JSON.parse(localStorage.getItem('station.queue.v2')).map(x => x.scan_id)`)
		if len(scanIDs) != 2 {
			t.Fatalf("queue holds %v", scanIDs)
		}

		tb.offline(false)
		tb.wait("the queue to drain", `document.getElementById('queue').dataset.length === '0'`)
		tb.wait("the queued scans to show their answers", `Array.from(document.querySelectorAll('#recent li')).every(li => li.dataset.state !== 'queued')`)
		// A replay of a delivered scan (its answer lost on the way back) is
		// the same scan: still one work order each.
		tb.do(chromedp.Evaluate[chromedp.Void](`localStorage.setItem('station.queue.v2', JSON.stringify([` +
			`{kind: 'sort', path: '/api/v1/sort', body: {tracking_no: '` + tns[0] + `', scan_id: '` + scanIDs[0] + `'}, scan_id: '` + scanIDs[0] + `', tracking_no: '` + tns[0] + `', ` +
			`operator_id: 'op1', station_id: 'SG-H01'}]))`))
		tb.wait("the replay", `(JSON.parse(localStorage.getItem('station.queue.v2')) || []).length === 0`)
		for i, id := range scanIDs {
			if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = $1`, id); n != 1 {
				t.Fatalf("scan %s: %d work orders, want exactly 1", id, n)
			}
			if n := st.Count(`SELECT count(*) FROM sort_results WHERE tracking_no = $1`, tns[i]); n != 1 {
				t.Fatalf("%s: %d sort results", tns[i], n)
			}
		}
		tb.shot("terminal-offline-replayed")
	})

	t.Run("BagOpenedFilledSealedWithLabel", func(t *testing.T) {
		hop, same, other := sortedParcels(t, st, op, 100)
		tb := b.tab(t)
		tb.login("/", "op1")
		tb.do(chromedp.KeyEvent("3", chromedp.KeyModifiers(chromedp.ModifierAlt)))
		tb.wait("the bag screen", `document.activeElement.id === 'bag-next-hop'`)
		tb.scan("bag-next-hop", hop)
		tb.wait("the open bag", `!document.getElementById('bag-work').hidden && document.body.dataset.bagStatus === 'open'`)
		bagID := tb.text("#bag-id")
		tb.scan("bag-scan", same[0])
		tb.wait("one parcel", `document.getElementById('bag-count').textContent === '1'`)
		tb.scan("bag-scan", other)
		tb.wait("the wrong-bag refusal", `document.getElementById('bag-msg').dataset.code === 'wrong_next_hop'`)
		if got := tb.text("#bag-msg"); !strings.Contains(got, "Wrong bag") || !strings.Contains(got, hop) {
			t.Fatalf("wrong next hop explained as %q", got)
		}
		tb.shot("terminal-bag-wrong-next-hop")
		tb.scan("bag-scan", "ACK")
		tb.wait("the acknowledgement", `document.body.dataset.held === '0'`)
		tb.scan("bag-scan", same[1])
		tb.wait("two parcels", `document.getElementById('bag-count').textContent === '2'`)
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#bag-items li[data-tracking-no=%q] button`, same[1]))))
		tb.wait("the removal", `document.getElementById('bag-count').textContent === '1'`)
		tb.scan("bag-scan", same[1])
		tb.wait("two parcels again", `document.getElementById('bag-count').textContent === '2'`)
		tb.scan("bag-weight", "4200")
		tb.wait("the sealed bag", `document.body.dataset.bagStatus === 'sealed'`)
		tb.wait("the label preview", `document.getElementById('bag-label-img').complete && document.getElementById('bag-label-img').naturalWidth > 0`)
		tb.wait("the ZPL link", `document.getElementById('bag-zpl').href.startsWith('blob:') && document.getElementById('bag-zpl').download.endsWith('.zpl')`)
		if n := st.Count(`SELECT count(*) FROM bags WHERE id = $1 AND status = 'sealed' AND weight_g = 4200`, bagID); n != 1 {
			t.Fatalf("bag %s not sealed at 4200 g in the database", bagID)
		}
		if n := st.Count(`SELECT count(*) FROM bag_items WHERE bag_id = $1`, bagID); n != 2 {
			t.Fatalf("bag %s holds %d parcels", bagID, n)
		}
		tb.scrollTo("bag-label")
		tb.longShot("terminal-bag-sealed")
	})

	t.Run("HandoverClosedWithManifest", func(t *testing.T) {
		bagID, trip := sealedBagOnATrip(t, st, op)
		unsealed := openBag(t, st, op, fx.ViaStation("SG-H01", 0), "ho-unsealed")
		tb := b.tab(t)
		tb.login("/", "op1")
		tb.do(chromedp.KeyEvent("4", chromedp.KeyModifiers(chromedp.ModifierAlt)))
		tb.wait("the handover screen", `document.activeElement.id === 'ho-ref'`)
		tb.scan("ho-ref", trip)
		tb.wait("the open handover", `document.body.dataset.handoverStatus === 'open'`)
		hoID := tb.text("#ho-id")
		tb.scan("ho-scan", unsealed)
		tb.wait("the refusal of an open bag", `document.getElementById('ho-msg').dataset.code === 'bag_not_sealed'`)
		tb.scan("ho-scan", "ACK")
		tb.wait("the acknowledgement", `document.body.dataset.held === '0'`)
		tb.scan("ho-scan", bagID)
		tb.wait("the bag on the handover", `document.getElementById('ho-bag-count').textContent === '1'`)
		tb.do(chromedp.Click(chromedp.ID("ho-close")))
		tb.wait("the confirmation", `!document.getElementById('ho-close-confirm').hidden`)
		tb.do(chromedp.Click(chromedp.ID("ho-close-confirm")))
		tb.wait("the closed handover", `document.body.dataset.handoverStatus === 'closed'`)
		tb.wait("the manifest", `!document.getElementById('ho-manifest').hidden && document.getElementById('ho-csv').href.startsWith('blob:')`)
		if got := tb.text("#ho-manifest-table"); !strings.Contains(got, bagID) {
			t.Fatalf("manifest shows %q", got)
		}
		var h struct {
			Status   string `json:"status"`
			BagCount int    `json:"bag_count"`
		}
		st.Do("GET", "/api/v1/handovers/"+hoID, op, nil, http.StatusOK, &h)
		if h.Status != "closed" || h.BagCount != 1 {
			t.Fatalf("handover %s: %+v", hoID, h)
		}
		tb.scrollTo("ho-manifest")
		tb.longShot("terminal-handover-closed")
	})

	t.Run("OpsReleaseRatioChangeReachesTheAPI", func(t *testing.T) {
		ops := st.Login("ops1")
		tb := b.tab(t)
		tb.login("/ops", "ops1")
		tb.wait("the rule", `document.getElementById('release-view').dataset.state === 'ready'`)
		// Shadow the V2 routing candidate on every parcel (100 %).
		tb.do(
			chromedp.SetValue(chromedp.ID("rel-candidate"), "full_v2@1"),
			chromedp.Click(chromedp.CSS(`input[name="rel-mode"][value="shadow"]`)),
			chromedp.SetValue(chromedp.ID("rel-ratio"), "100"),
			chromedp.SendKeys(chromedp.ID("rel-reason"), "shadow V2 routing\n"),
		)
		tb.wait("the saved rule", `document.getElementById('rel-current').dataset.mode === 'shadow'`)
		rule := release(t, st, ops)
		if rule.Mode != "shadow" || rule.RatioBP != 10000 || rule.CandidateFlow != "full_v2" {
			t.Fatalf("API shows %+v", rule)
		}

		// Real differences: parcels to the site V2 re-homes.
		moved := rehomed(t, st, 2)
		for i, tn := range append(moved, sim.ViaStation("SG-H01", 4)) {
			st.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprint("shadow-", i)}, http.StatusOK, nil)
		}
		tb.view("recon")
		// Shadow counts reach PostgreSQL in the background: refresh until
		// they are there.
		for deadline := time.Now().Add(waitFor); ; {
			if eval[bool](tb, `document.querySelectorAll('#recon-list tr[data-id]').length >= 1`) {
				break
			}
			if time.Now().After(deadline) {
				tb.failed()
				t.Fatalf("no mismatches shown: %s", tb.text("#recon-view"))
			}
			tb.do(chromedp.Click(chromedp.CSS(`#recon-form button`)), chromedp.Sleep(300*time.Millisecond))
		}
		tb.longShot("ops-reconciliation")
		tb.do(chromedp.Click(chromedp.CSS(`#recon-list tr[data-id] button`)))
		tb.wait("the drill-down", `document.getElementById('recon-detail').dataset.firstDiff === 'get_route' &&
			document.querySelectorAll('#recon-waterfalls g.run[data-role="stable"] .diff').length === 1 &&
			document.querySelectorAll('#recon-waterfalls g.run[data-role="candidate"] .diff').length === 1`)
		checkOneTimeScale(tb, "#recon-waterfalls")
		tb.scrollTo("recon-detail")
		tb.longShot("ops-reconciliation-mismatch")
		tb.desktop()
		tb.scrollTo("recon-view")
		tb.longShot("desktop-ops-reconciliation")
		tb.do(chromedp.EmulateViewport(360, 640, chromedp.EmulateMobile))

		// A ramp to split is refused by the guard (too few comparisons) ...
		tb.view("release")
		if mode := eval[string](tb, `document.getElementById('rel-current').dataset.mode`); mode != "shadow" {
			t.Fatalf("console shows mode %q", mode)
		}
		tb.do(
			chromedp.Click(chromedp.CSS(`input[name="rel-mode"][value="split"]`)),
			chromedp.SetValue(chromedp.ID("rel-ratio"), "5"),
			chromedp.Click(chromedp.ID("rel-save")),
		)
		tb.wait("the guard's refusal", `document.querySelector('#rel-result .refusal[data-code="match_rate_too_low"]') !== null`)
		if got := tb.text("#rel-result"); !strings.Contains(got, "comparisons") {
			t.Fatalf("refusal says %q", got)
		}
		tb.scrollTo("rel-result")
		tb.shot("ops-release-refused")
		if rule := release(t, st, ops); rule.Mode != "shadow" {
			t.Fatalf("a refused ramp changed the rule: %+v", rule)
		}
		// ... and goes through when forced with a reason, which is audited.
		tb.do(
			chromedp.Click(chromedp.ID("rel-force")),
			chromedp.SendKeys(chromedp.ID("rel-reason"), "browser test: ramp anyway"),
			chromedp.Click(chromedp.ID("rel-save")),
		)
		tb.wait("the split rule", `document.getElementById('rel-current').dataset.mode === 'split'`)
		if rule := release(t, st, ops); rule.Mode != "split" || rule.RatioBP != 500 {
			t.Fatalf("API shows %+v after the forced ramp", rule)
		}
		tb.view("audit")
		tb.wait("the forced entry", `document.querySelector('#audit-table tr[data-forced="true"]') !== null`)
		tb.longShot("ops-audit")

		// The kill switch.
		tb.view("release")
		tb.do(chromedp.Click(chromedp.ID("rel-kill")))
		tb.wait("the kill's reason field", `document.activeElement.id === 'rel-kill-reason'`)
		tb.do(chromedp.SendKeys(chromedp.ID("rel-kill-reason"), "browser test: kill\n"))
		tb.wait("the killed rule", `document.getElementById('rel-current').dataset.mode === 'off'`)
		if rule := release(t, st, ops); rule.Mode != "off" || rule.RatioBP != 0 {
			t.Fatalf("API shows %+v after the kill", rule)
		}
		tb.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
		tb.longShot("ops-release")
	})

	t.Run("OpsTraceWaterfallHighlightsTheCriticalPath", func(t *testing.T) {
		tn := sim.ViaStation("SG-H01", 5)
		var sorted struct {
			Trace struct {
				Nodes        []json.RawMessage `json:"nodes"`
				CriticalPath []string          `json:"critical_path"`
			} `json:"trace"`
		}
		st.Do("POST", "/api/v1/sort?trace=1", op, map[string]string{"tracking_no": tn, "scan_id": "trace-1"}, http.StatusOK, &sorted)
		tb := b.tab(t)
		tb.login("/ops", "ops1")
		tb.view("trace")
		tb.scan("trace-tn", tn)
		tb.wait("the waterfall", `document.querySelectorAll('#trace-chart svg g.step').length > 0`)
		if n := eval[int](tb, `document.querySelectorAll('#trace-chart svg g.step').length`); n != len(sorted.Trace.Nodes) {
			t.Fatalf("waterfall has %d steps, the trace %d", n, len(sorted.Trace.Nodes))
		}
		crit := eval[[]string](tb, `Array.from(document.querySelectorAll('#trace-chart g.step[data-critical="true"]')).map(g => g.dataset.node)`)
		if len(crit) == 0 || len(crit) != len(sorted.Trace.CriticalPath) {
			t.Fatalf("highlighted %v, critical path %v", crit, sorted.Trace.CriticalPath)
		}
		if n := eval[int](tb, `document.querySelectorAll('#trace-chart rect.bar.critical').length`); n != len(crit) {
			t.Fatalf("%d red bars for %d critical steps", n, len(crit))
		}
		tb.longShot("ops-trace")
	})

	t.Run("OpsRelayRedrivesADeadLetter", func(t *testing.T) {
		var id int64
		err := st.App.DB().QueryRow(context.Background(), `UPDATE tracking_outbox SET status = 'dead', attempts = 8,
			last_error = 'order center: unavailable' WHERE id = (SELECT min(id) FROM tracking_outbox) RETURNING id`).Scan(&id)
		if err != nil {
			t.Fatal(err)
		}
		tb := b.tab(t)
		tb.login("/ops", "ops1")
		tb.view("relay")
		row := fmt.Sprintf(`#relay-dead tr[data-id="%d"]`, id)
		tb.wait("the dead letter", fmt.Sprintf(`document.querySelector(%q) !== null`, row))
		tb.longShot("ops-relay")
		tb.do(chromedp.Click(chromedp.CSS(row + " button")))
		tb.wait("the re-drive", `document.getElementById('relay-msg').textContent.includes('pending again')`)
		if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE id = $1 AND status <> 'dead' AND redriven_by = 'ops1'`, id); n != 1 {
			t.Fatalf("event %d not re-driven by ops1", id)
		}
	})

	t.Run("OpsRelayShowsFailingEventsAndActsInBulk", func(t *testing.T) {
		var failing, dead int64
		err := st.App.DB().QueryRow(context.Background(), `UPDATE tracking_outbox SET status = 'pending', attempts = 3,
			next_attempt_at = now() + interval '1 hour', last_error = 'push failed: Internal: boom'
			WHERE id = (SELECT max(id) FROM tracking_outbox) RETURNING id`).Scan(&failing)
		if err != nil {
			t.Fatal(err)
		}
		err = st.App.DB().QueryRow(context.Background(), `UPDATE tracking_outbox SET status = 'dead', attempts = 1,
			last_error = 'push refused: FailedPrecondition' WHERE id = (SELECT max(id) FROM tracking_outbox WHERE id < $1) RETURNING id`, failing).Scan(&dead)
		if err != nil {
			t.Fatal(err)
		}
		tb := b.tab(t)
		tb.login("/ops", "ops1")
		tb.view("relay")
		row := fmt.Sprintf(`#relay-failing tr[data-id="%d"]`, failing)
		tb.wait("the failing event with its error", fmt.Sprintf(`(document.querySelector(%q) || {textContent: ''}).textContent.includes('Internal: boom')`, row))
		tb.do(chromedp.SendKeys(chromedp.ID("relay-reason"), "order center fixed"))
		tb.do(chromedp.Click(chromedp.ID("relay-retry-now")))
		tb.wait("retry now", `document.getElementById('relay-msg').textContent.includes('will be sent now')`)
		tb.do(chromedp.Click(chromedp.ID("relay-redrive-all")))
		tb.wait("the bulk re-drive", `document.getElementById('relay-msg').textContent.includes('pending again')`)
		if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE id = $1 AND (status <> 'pending' OR next_attempt_at <= now())`, failing); n != 1 {
			t.Fatalf("event %d still waits for its backoff", failing)
		}
		if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE id = $1 AND status <> 'dead' AND redriven_by = 'ops1'`, dead); n != 1 {
			t.Fatalf("event %d not re-driven by ops1", dead)
		}
		if n := st.Count(`SELECT count(*) FROM outbox_audit WHERE actor = 'ops1' AND reason = 'order center fixed'
			AND event_ids IS NULL AND changed >= 1 AND action IN ('retry_now', 'redrive')`); n != 2 {
			t.Fatalf("%d audited bulk actions, want 2", n)
		}
	})
}

// warmUp sorts one parcel through the API until the downstream
// connections are up, so the first scan in the browser meets a warm
// station rather than the first gRPC dial on a busy machine.
func warmUp(t *testing.T, st *stationtest.Station, token string) {
	t.Helper()
	for i := 0; i < 5; i++ {
		var r sorting.Result
		st.Do("POST", "/api/v1/sort", token, map[string]string{"tracking_no": sim.ViaStation("SG-H01", 999), "scan_id": fmt.Sprint("warm-up-", i)}, http.StatusOK, &r)
		if r.Exception == nil {
			return
		}
	}
}

// sortedParcels sorts parcels via SG-H01 until two share a next hop and one
// goes elsewhere.
func sortedParcels(t *testing.T, st *stationtest.Station, token string, from int) (hop string, same []string, other string) {
	t.Helper()
	byHop := map[string][]string{}
	for i := from; i < from+60; i++ {
		tn := sim.ViaStation("SG-H01", i)
		var r sorting.Result
		st.Do("POST", "/api/v1/sort", token, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprint("prep-", i)}, http.StatusOK, &r)
		if r.NextHop == nil {
			continue
		}
		byHop[*r.NextHop] = append(byHop[*r.NextHop], tn)
		for h, tns := range byHop {
			if len(tns) < 2 {
				continue
			}
			for h2, o := range byHop {
				if h2 != h {
					return h, tns[:2], o[0]
				}
			}
		}
	}
	t.Fatalf("no two parcels with one next hop and one with another among %v", byHop)
	return "", nil, ""
}

// openBag sorts tn and opens a bag for its next hop with it inside.
func openBag(t *testing.T, st *stationtest.Station, token, tn, scan string) string {
	t.Helper()
	var r sorting.Result
	for i := 0; i < 3 && r.NextHop == nil; i++ {
		st.Do("POST", "/api/v1/sort", token, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprint(scan, "-sort-", i)}, http.StatusOK, &r)
	}
	if r.NextHop == nil {
		t.Fatalf("%s did not sort to a next hop: %+v", tn, r.Exception)
	}
	var bag struct {
		ID string `json:"bag_id"`
	}
	st.Do("POST", "/api/v1/bags", token, map[string]string{"next_hop": *r.NextHop, "scan_id": scan + "-open"}, http.StatusCreated, &bag)
	st.Do("POST", "/api/v1/bags/"+bag.ID+"/items", token, map[string]string{"tracking_no": tn, "scan_id": scan + "-add"}, http.StatusOK, nil)
	return bag.ID
}

// sealedBagOnATrip prepares a sealed bag whose next hop a trip from SG-H01
// stops at.
func sealedBagOnATrip(t *testing.T, st *stationtest.Station, token string) (bagID, trip string) {
	t.Helper()
	for i := 200; i < 260; i++ {
		tn := sim.ViaStation("SG-H01", i)
		var r sorting.Result
		st.Do("POST", "/api/v1/sort", token, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprint("trip-", i)}, http.StatusOK, &r)
		if r.NextHop == nil {
			continue
		}
		if trip = st.Sim.Fixtures().TripTo("SG-H01", *r.NextHop); trip == "" {
			continue
		}
		var bag struct {
			ID string `json:"bag_id"`
		}
		st.Do("POST", "/api/v1/bags", token, map[string]string{"next_hop": *r.NextHop, "scan_id": fmt.Sprint("trip-open-", i)}, http.StatusCreated, &bag)
		st.Do("POST", "/api/v1/bags/"+bag.ID+"/items", token, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprint("trip-add-", i)}, http.StatusOK, nil)
		st.Do("POST", "/api/v1/bags/"+bag.ID+"/seal", token, map[string]any{"weight_g": 1500, "scan_id": fmt.Sprint("trip-seal-", i)}, http.StatusOK, nil)
		return bag.ID, trip
	}
	t.Fatal("no parcel whose next hop a trip from SG-H01 serves")
	return "", ""
}

func release(t *testing.T, st *stationtest.Station, token string) sorting.Rule {
	t.Helper()
	var r sorting.Rule
	st.Do("GET", "/api/v1/ops/sites/SG-H01/release", token, nil, http.StatusOK, &r)
	return r
}

// rehomed lists parcels via SG-H01 bound for the site whose home hub V2
// routing changes: their next hop differs between stable and candidate.
func rehomed(t *testing.T, st *stationtest.Station, n int) []string {
	t.Helper()
	site, _, _ := sim.RehomedV2("SG")
	var out []string
	for i := 0; len(out) < n && i < 5000; i++ {
		tn := sim.ViaStation("SG-H01", i)
		p, err := st.Sim.Fixtures().Parcel(tn)
		if err != nil {
			t.Fatal(err)
		}
		if p.Destination == site {
			out = append(out, tn)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d re-homed parcels", len(out))
	}
	return out
}

// checkOneTimeScale checks that the chart in css draws both runs in one svg
// on one time axis: every bar of either run starts and ends where the
// chart's one scale puts its times.
func checkOneTimeScale(tb *tab, css string) {
	tb.t.Helper()
	js := fmt.Sprintf(`(() => {
		const svgs = document.querySelectorAll(%[1]q + ' svg');
		if (svgs.length !== 1) return 'charts: ' + svgs.length;
		const root = svgs[0];
		if (root.querySelectorAll('g.run').length !== 2) return 'runs: ' + root.querySelectorAll('g.run').length;
		const x0 = Number(root.dataset.x0), perMs = Number(root.dataset.pxPerMs);
		for (const bar of root.querySelectorAll('g.run rect.bar')) {
			const want = x0 + Number(bar.dataset.startNs) / 1e6 * perMs;
			const end = x0 + Number(bar.dataset.endNs) / 1e6 * perMs;
			const x = Number(bar.getAttribute('x')), w = Number(bar.getAttribute('width'));
			if (Math.abs(x - want) > 0.5 || (w > 1.5 && Math.abs(x + w - end) > 0.5)) return 'bar off the scale: ' + bar.parentNode.dataset.node;
		}
		return '';
	})()`, css)
	if got := eval[string](tb, js); got != "" {
		tb.failed()
		tb.t.Fatalf("the waterfalls in %s are not on one time scale: %s", css, got)
	}
}
