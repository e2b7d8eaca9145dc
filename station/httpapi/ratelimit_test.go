package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/ratelimit"
)

// Rate limits per operator and per terminal. Limits are per second, so a
// count is exact only if no time passes; every bound below allows for the
// budget that refills while the test runs (GCRA: the burst at once, then
// one request per 1/rate), measured, never assumed.

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; deadRedisLimiter fails them on purpose.
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// limitConfig is a harness config with small limits and a login limit the
// tests never reach.
func limitConfig(operatorRPS, terminalRPS int) Config {
	return Config{MaxBodyBytes: 1 << 20, LoginPerMinute: 1000, RequestsPerSecond: operatorRPS, TerminalRequestsPerSecond: terminalRPS}
}

// deadRedisLimiter is a limiter whose Redis refuses connections, so every
// decision falls back to the per-instance limiter.
func deadRedisLimiter(t *testing.T) *ratelimit.Limiter {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	return ratelimit.New(rdb, "dead:")
}

// loginAt logs an operator in from a terminal and returns the token.
func (h *harness) loginAt(id, terminal string) string {
	h.t.Helper()
	var sess auth.Session
	h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": id, "password": "password-" + id, "terminal_id": terminal}, http.StatusOK, &sess)
	if sess.Token == "" || sess.TerminalID != terminal {
		h.t.Fatalf("login %s at %s: %+v", id, terminal, sess)
	}
	return sess.Token
}

// hit is one answer as a load generator sees it.
type hit struct {
	status     int
	retryAfter string
	limit      string // details.limit of a 429
	err        error
}

// send makes one request without failing the test, so goroutines can use it.
func send(c *http.Client, base, method, path, token string, header ...string) hit {
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		return hit{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return hit{err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return hit{err: err}
	}
	h := hit{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == http.StatusTooManyRequests {
		var e struct {
			Error struct {
				Code    string         `json:"code"`
				Details map[string]any `json:"details"`
			} `json:"error"`
		}
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&e); err != nil || e.Error.Code != "rate_limited" {
			h.err = fmt.Errorf("429 without the rate_limited code: %s", raw)
		}
		h.limit, _ = e.Error.Details["limit"].(string)
	}
	return h
}

// checkRefusal reports a 429 that lacks what a client needs to back off.
func checkRefusal(t *testing.T, h hit, wantLimit string) {
	t.Helper()
	secs, err := strconv.Atoi(h.retryAfter)
	if err != nil || secs < 1 {
		t.Errorf("429 with Retry-After %q, want whole seconds >= 1", h.retryAfter)
	}
	if wantLimit != "" && h.limit != wantLimit {
		t.Errorf("429 names limit %q, want %q", h.limit, wantLimit)
	}
}

// admissible is the most a limit can admit from a full bucket within
// elapsed: the burst, what refills meanwhile, and one for the boundary.
func admissible(perSecond int, elapsed time.Duration) int {
	return perSecond + int(math.Ceil(elapsed.Seconds()*float64(perSecond))) + 1
}

func TestTwoOperatorsOnOneTerminalShareItsBudget(t *testing.T) {
	for _, redisUp := range []bool{true, false} {
		t.Run(map[bool]string{true: "GCRA in Redis", false: "local fallback, Redis unreachable"}[redisUp], func(t *testing.T) {
			const terminalRPS = 5
			var lim *ratelimit.Limiter
			if !redisUp {
				lim = deadRedisLimiter(t)
			}
			h := newHarnessWith(t, limitConfig(1000, terminalRPS), lim)
			for _, id := range []string{"ana", "ben", "cara"} {
				h.addOperator(id, "SG-H01", auth.RoleOperator)
			}
			ana, ben := h.loginAt("ana", "pda-7"), h.loginAt("ben", "pda-7")
			cara := h.loginAt("cara", "pda-8")

			c := h.http.Client()
			start := time.Now()
			admitted := map[string]int{}
			for i := 0; i < 2*2*terminalRPS; i++ {
				who, token := "ana", ana
				if i%2 == 1 {
					who, token = "ben", ben
				}
				// A header naming another terminal changes nothing: the
				// terminal is the one stored with the session.
				r := send(c, h.http.URL, "GET", "/api/v1/me", token, "X-Terminal-Id", fmt.Sprintf("pda-%d", 100+i))
				switch {
				case r.err != nil:
					t.Fatal(r.err)
				case r.status == http.StatusOK:
					admitted[who]++
				case r.status == http.StatusTooManyRequests:
					checkRefusal(t, r, "terminal")
				default:
					t.Fatalf("request %d: status %d", i, r.status)
				}
			}
			elapsed := time.Since(start)
			total := admitted["ana"] + admitted["ben"]
			if total < terminalRPS || total > admissible(terminalRPS, elapsed) {
				t.Fatalf("two operators on one terminal: %d of %d admitted in %v, want the terminal's budget %d (at most %d with refill)",
					total, 4*terminalRPS, elapsed, terminalRPS, admissible(terminalRPS, elapsed))
			}
			if admitted["ana"] == 0 || admitted["ben"] == 0 {
				t.Fatalf("admitted %v: both operators should have been served from the shared budget", admitted)
			}
			// Another terminal has its own budget, untouched by pda-7's.
			for i := 0; i < terminalRPS; i++ {
				if r := send(c, h.http.URL, "GET", "/api/v1/me", cara, ""); r.status != http.StatusOK {
					t.Fatalf("pda-8 request %d: %d %v", i, r.status, r.err)
				}
			}
		})
	}
}

func TestOneOperatorOnTwoTerminalsHasOneOperatorBudget(t *testing.T) {
	for _, redisUp := range []bool{true, false} {
		t.Run(map[bool]string{true: "GCRA in Redis", false: "local fallback, Redis unreachable"}[redisUp], func(t *testing.T) {
			const operatorRPS, terminalRPS = 6, 4
			var lim *ratelimit.Limiter
			if !redisUp {
				lim = deadRedisLimiter(t)
			}
			h := newHarnessWith(t, limitConfig(operatorRPS, terminalRPS), lim)
			h.addOperator("ana", "SG-H01", auth.RoleOperator)
			t1, t2 := h.loginAt("ana", "pda-1"), h.loginAt("ana", "pda-2")
			c := h.http.Client()

			start := time.Now()
			burst := func(token string, n int) (admitted int, limits map[string]int) {
				limits = map[string]int{}
				for i := 0; i < n; i++ {
					r := send(c, h.http.URL, "GET", "/api/v1/me", token)
					switch {
					case r.err != nil:
						t.Fatal(r.err)
					case r.status == http.StatusOK:
						admitted++
					case r.status == http.StatusTooManyRequests:
						checkRefusal(t, r, "")
						limits[r.limit]++
					default:
						t.Fatalf("status %d", r.status)
					}
				}
				return admitted, limits
			}
			// pda-1 spends its own budget; the terminal refuses the rest,
			// which therefore cost the operator nothing.
			a1, l1 := burst(t1, 2*terminalRPS)
			// pda-2 has a fresh terminal budget but shares the operator's.
			a2, l2 := burst(t2, 2*terminalRPS)
			elapsed := time.Since(start)
			t.Logf("pda-1: %d admitted, refused %v; pda-2: %d admitted, refused %v; %v", a1, l1, a2, l2, elapsed)

			if a1 < terminalRPS || a1 > admissible(terminalRPS, elapsed) || l1["terminal"] == 0 || l1["operator"] != 0 {
				t.Errorf("pda-1: %d admitted, refused %v; want its terminal's %d, then terminal refusals", a1, l1, terminalRPS)
			}
			if a1+a2 < operatorRPS || a1+a2 > admissible(operatorRPS, elapsed) {
				t.Errorf("one operator on two terminals: %d admitted in all, want the operator's %d (at most %d with refill)",
					a1+a2, operatorRPS, admissible(operatorRPS, elapsed))
			}
			// pda-2 ran out of the operator's budget before its own.
			if l2["operator"] == 0 || a2 >= terminalRPS {
				t.Errorf("pda-2: %d admitted, refused %v; want the operator limit to stop it below its terminal's %d", a2, l2, terminalRPS)
			}
		})
	}
}

func TestTerminalIDIsValidatedAndBoundToTheToken(t *testing.T) {
	h := newHarnessWith(t, limitConfig(1000, 1000), nil)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	for _, bad := range []string{" ", "pda 7", "pda/7", "pda\x007", "ü", string(bytes.Repeat([]byte("x"), 65))} {
		h.expectError("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "ana", "password": "password-ana", "terminal_id": bad},
			http.StatusBadRequest, "invalid_terminal_id")
	}
	var n int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM auth_tokens`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused logins stored %d tokens (%v)", n, err)
	}
	token := h.loginAt("ana", "Web_1.a-b")
	p, err := h.auth.Authenticate(context.Background(), token)
	if err != nil || p.Terminal != "Web_1.a-b" {
		t.Fatalf("the token resolves to terminal %q (%v)", p.Terminal, err)
	}
	// Without a terminal the session is limited per operator only.
	plain := h.login("ana")
	if p, err := h.auth.Authenticate(context.Background(), plain); err != nil || p.Terminal != "" {
		t.Fatalf("a login without terminal_id resolves to terminal %q (%v)", p.Terminal, err)
	}
}

// TestConcurrentLoadAdmitsTheBudgetAndRefusesTheRest drives several
// terminals, each shared by two operators, with concurrent clients: per
// terminal exactly its budget is admitted (plus what refills while the load
// runs), every other request is 429 with Retry-After, and nothing is 5xx.
func TestConcurrentLoadAdmitsTheBudgetAndRefusesTheRest(t *testing.T) {
	for _, redisUp := range []bool{true, false} {
		t.Run(map[bool]string{true: "GCRA in Redis", false: "local fallback, Redis unreachable"}[redisUp], func(t *testing.T) {
			const (
				terminalRPS = 20
				terminals   = 4
				workers     = 4 // per terminal
				perWorker   = 30
			)
			var lim *ratelimit.Limiter
			if !redisUp {
				lim = deadRedisLimiter(t)
			}
			h := newHarnessWith(t, limitConfig(100000, terminalRPS), lim)
			tokens := make([][2]string, terminals)
			for i := range terminals {
				for j := range 2 {
					id := fmt.Sprintf("op%d-%d", i, j)
					h.addOperator(id, "SG-H01", auth.RoleOperator)
					tokens[i][j] = h.loginAt(id, fmt.Sprintf("pda-%d", i))
				}
			}
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: terminals * workers}}
			defer c.CloseIdleConnections()

			var mu sync.Mutex
			admitted := make([]int, terminals)
			refused := make([]int, terminals)
			var problems []string
			var wg sync.WaitGroup
			start := time.Now()
			for term := range terminals {
				for w := range workers {
					wg.Go(func() {
						for i := range perWorker {
							r := send(c, h.http.URL, "GET", "/api/v1/me", tokens[term][(w+i)%2])
							mu.Lock()
							switch {
							case r.err != nil:
								problems = append(problems, r.err.Error())
							case r.status == http.StatusOK:
								admitted[term]++
							case r.status == http.StatusTooManyRequests:
								refused[term]++
								if secs, err := strconv.Atoi(r.retryAfter); err != nil || secs < 1 || r.limit != "terminal" {
									problems = append(problems, fmt.Sprintf("429 with Retry-After %q, limit %q", r.retryAfter, r.limit))
								}
							default:
								problems = append(problems, fmt.Sprintf("status %d", r.status))
							}
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			elapsed := time.Since(start)
			if len(problems) > 0 {
				t.Fatalf("%d bad answers, first: %s", len(problems), problems[0])
			}
			for term := range terminals {
				if admitted[term]+refused[term] != workers*perWorker {
					t.Errorf("pda-%d: %d answers, want %d", term, admitted[term]+refused[term], workers*perWorker)
				}
				if admitted[term] < terminalRPS || admitted[term] > admissible(terminalRPS, elapsed) {
					t.Errorf("pda-%d: %d admitted in %v, want the budget %d (at most %d with refill)",
						term, admitted[term], elapsed, terminalRPS, admissible(terminalRPS, elapsed))
				}
			}
			t.Logf("REPORT per-terminal limit, %s: %d requests from %d clients on %d terminals in %v: admitted %v, refused 429 with Retry-After %v (budget %d/s each), no 5xx", t.Name(),
				terminals*workers*perWorker, terminals*workers, terminals, elapsed.Round(time.Millisecond), admitted, refused, terminalRPS)
		})
	}
}

// TestConcurrentLoadOnOneOperatorAdmitsItsBudget is the operator limit
// under the same kind of load: many clients, one operator, no terminal.
func TestConcurrentLoadOnOneOperatorAdmitsItsBudget(t *testing.T) {
	const operatorRPS, workers, perWorker = 25, 12, 25
	h := newHarnessWith(t, limitConfig(operatorRPS, 1), nil)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	token := h.login("ana")
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer c.CloseIdleConnections()
	var mu sync.Mutex
	counts := map[int]int{}
	var problems []string
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range perWorker {
				r := send(c, h.http.URL, "GET", "/api/v1/me", token)
				mu.Lock()
				counts[r.status]++
				if r.err != nil {
					problems = append(problems, r.err.Error())
				} else if r.status == http.StatusTooManyRequests && (r.retryAfter == "" || r.limit != "operator") {
					problems = append(problems, fmt.Sprintf("429 with Retry-After %q, limit %q", r.retryAfter, r.limit))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(problems) > 0 {
		t.Fatalf("%d bad answers, first: %s", len(problems), problems[0])
	}
	if counts[http.StatusOK]+counts[http.StatusTooManyRequests] != workers*perWorker {
		t.Fatalf("answers by status %v: only 200 and 429 expected", counts)
	}
	if ok := counts[http.StatusOK]; ok < operatorRPS || ok > admissible(operatorRPS, elapsed) {
		t.Fatalf("%d admitted in %v, want the operator's budget %d (at most %d with refill)", ok, elapsed, operatorRPS, admissible(operatorRPS, elapsed))
	}
	t.Logf("REPORT per-operator limit: %d requests from %d clients in %v, answers by status %v (budget %d/s)", workers*perWorker, workers, elapsed.Round(time.Millisecond), counts, operatorRPS)
}
