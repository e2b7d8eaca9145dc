package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// client talks to a station over HTTP like a terminal. Unlike
// stationtest.Station it returns transport errors instead of failing, so
// load drivers can ride out a killed process.
type client struct {
	base string
	hc   *http.Client
}

func newClient(t testing.TB, base string) *client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// send makes one request; the error is non-nil only when no HTTP answer came
// back. body may be nil, a string, []byte or a value to encode as JSON.
func (c *client) send(ctx context.Context, method, path, token string, body any, header ...string) (answer, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer{}, transportErr(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, transportErr(err)
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// must makes a request that has to answer want, decoding the body into out.
func (c *client) must(t testing.TB, method, path, token string, body any, want int, out any, header ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := c.send(ctx, method, path, token, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if a.Status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, a.Status, want, a.Body)
	}
	if out != nil {
		if err := json.Unmarshal(a.Body, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, a.Body, err)
		}
	}
	return a
}

// login returns a bearer token.
func (c *client) login(t testing.TB, operatorID, password string) string {
	t.Helper()
	var sess struct {
		Token string `json:"token"`
	}
	c.must(t, "POST", "/api/v1/auth/login", "", map[string]string{"operator_id": operatorID, "password": password}, http.StatusOK, &sess)
	if sess.Token == "" {
		t.Fatal("login: empty token")
	}
	return sess.Token
}
