// The login form both pages share.

import {$, msg} from './dom.js';

// setupLogin wires #login-form. check(session) may refuse a session that
// logged in fine (the console needs the ops role) by returning a reason.
export function setupLogin(api, {onLoggedIn, check}) {
  const form = $('login-form');
  const err = $('login-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const id = $('login-operator').value.trim();
    const pw = $('login-password').value;
    if (!id || !pw) {
      msg(err, 'bad', 'Enter your operator id and password.');
      return;
    }
    $('login-submit').disabled = true;
    try {
      const a = await api.login(id, pw);
      if (!a.ok) {
        const text = a.network ? 'No connection to the station server.'
          : a.status === 401 ? 'Operator id or password is wrong.'
          : a.status === 429 ? 'Too many attempts. Wait a minute and try again.'
          : (a.error && a.error.message) || 'Login failed.';
        msg(err, 'bad', text);
        $('login-password').select();
        return;
      }
      const refusal = check ? check(api.session) : '';
      if (refusal) {
        await api.logout();
        msg(err, 'bad', refusal);
        return;
      }
      $('login-password').value = '';
      onLoggedIn(api.session);
    } finally {
      $('login-submit').disabled = false;
    }
  });
}

export function showLogin(message) {
  $('login-view').hidden = false;
  $('app-view').hidden = true;
  const err = $('login-error');
  if (message) msg(err, 'warn', message);
  else err.hidden = true;
  const op = $('login-operator');
  (op.value ? $('login-password') : op).focus();
}
