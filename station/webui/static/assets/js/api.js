// The JSON API client of both pages: the bearer token from the session, one
// answer shape for every call, and "network" set when nothing reached the
// server (the caller decides whether to queue or to say so).

// Each page keeps its own session: an operator logged in at the terminal
// and an ops user at the console in the same browser do not log each
// other out.
export function loadSession(key) {
  try {
    const s = JSON.parse(localStorage.getItem(key) || 'null');
    if (!s || !s.token || !s.operator) return null;
    if (s.expires_at && new Date(s.expires_at).getTime() <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
}

function saveSession(key, s) {
  localStorage.setItem(key, JSON.stringify(s));
}

function clearSession(key) {
  localStorage.removeItem(key);
}

// terminalID names this browser as a terminal: made once and kept, so every
// session opened here shares one terminal rate limit on the server. Without
// storage the login goes without one (the operator's own limit still holds).
const TERMINAL_KEY = 'station.terminal.v1';
export function terminalID() {
  try {
    let id = localStorage.getItem(TERMINAL_KEY);
    if (!id || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      const b = new Uint8Array(8);
      crypto.getRandomValues(b);
      id = 'web-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
      localStorage.setItem(TERMINAL_KEY, id);
    }
    return id;
  } catch {
    return undefined;
  }
}

// Answer: {ok, status, data, error: {code, message, details}, network, blob}.
export class API {
  // sessionKey names the page's session in localStorage; onNetwork(ok) hears
  // whether each call reached the server; onUnauthenticated runs when the
  // server no longer knows the token.
  constructor({sessionKey, onUnauthenticated, onNetwork} = {}) {
    this.key = sessionKey || 'station.session.v1';
    this.session = loadSession(this.key);
    this.onUnauthenticated = onUnauthenticated || (() => {});
    this.onNetwork = onNetwork || (() => {});
  }

  get token() {
    return this.session ? this.session.token : '';
  }

  async login(operatorID, password) {
    const a = await this.request('POST', '/api/v1/auth/login', {operator_id: operatorID, password, terminal_id: terminalID()}, {auth: false});
    if (a.ok) {
      this.session = a.data;
      saveSession(this.key, a.data);
    }
    return a;
  }

  async logout() {
    if (this.session) await this.request('POST', '/api/v1/auth/logout', undefined, {quiet401: true});
    this.session = null;
    clearSession(this.key);
  }

  get(path, opts) { return this.request('GET', path, undefined, opts); }
  post(path, body, opts) { return this.request('POST', path, body, opts); }
  put(path, body, opts) { return this.request('PUT', path, body, opts); }
  del(path, opts) { return this.request('DELETE', path, undefined, opts); }

  // request sends one call. opts.as: 'json' (default) or 'blob';
  // opts.headers: extra headers; opts.auth false: no token; opts.raw: a
  // content type, and body is sent as it is (a YAML flow config).
  async request(method, path, body, opts = {}) {
    const headers = {Accept: opts.as === 'blob' ? '*/*' : 'application/json', ...(opts.headers || {})};
    if (body !== undefined) headers['Content-Type'] = opts.raw ? opts.raw : 'application/json';
    if (opts.auth !== false && this.token) headers.Authorization = 'Bearer ' + this.token;
    let resp;
    try {
      resp = await fetch(path, {
        method, headers, body: body === undefined ? undefined : opts.raw ? body : JSON.stringify(body),
        cache: 'no-store', credentials: 'omit',
      });
    } catch (e) {
      this.onNetwork(false);
      return {ok: false, status: 0, network: true, error: {code: 'network', message: 'no connection to the station server'}};
    }
    this.onNetwork(true);
    const answer = {ok: resp.ok, status: resp.status, network: false, headers: resp.headers};
    try {
      if (resp.ok && opts.as === 'blob') {
        answer.blob = await resp.blob();
      } else if (resp.status !== 204) {
        const text = await resp.text();
        const data = text ? JSON.parse(text) : null;
        if (resp.ok) answer.data = data;
        else answer.error = (data && data.error) || {code: 'http_' + resp.status, message: resp.statusText};
      }
    } catch (e) {
      // A body cut by a dropped connection is a network failure too.
      if (resp.ok) return {ok: false, status: 0, network: true, error: {code: 'network', message: 'the answer was cut off'}};
      answer.error = {code: 'http_' + resp.status, message: resp.statusText || 'unreadable answer'};
    }
    if (!resp.ok && !answer.error) answer.error = {code: 'http_' + resp.status, message: resp.statusText};
    if (resp.status === 401 && opts.auth !== false && !opts.quiet401) {
      this.session = null;
      clearSession(this.key);
      this.onUnauthenticated();
    }
    return answer;
  }
}

// retryable: the request may have not been applied and the same scan id
// may be sent again (the server's idempotency makes that safe).
export function retryable(a) {
  return a.network || a.status === 502 || a.status === 503 || a.status === 504 || a.status === 429;
}

// unavailable: the route is not on this server (an older build, or a
// feature still being rolled out) rather than a missing object.
export function unavailable(a) {
  return a.status === 404 && a.error && a.error.code === 'not_found' && /no such endpoint/i.test(a.error.message || '');
}

export function roleLabel(role) {
  return {operator: 'Operator', supervisor: 'Supervisor', ops: 'Ops'}[role] || role || '';
}
