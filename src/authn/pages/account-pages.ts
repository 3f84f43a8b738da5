import { createHash } from 'node:crypto';

/**
 * Gatehouse's own landing pages for the links in its mails (CONTRACT §12). Static HTML: the
 * token stays in the URL and is read by the page's script, never written into the page, and
 * nothing changes until the person presses the button (mail scanners only GET). No external
 * assets; the inline style and script are allowed by their hashes in a strict CSP.
 */

const STYLE = `
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; font-size: 1.0625rem; line-height: 1.5; color: #1a1a1a; background: #f4f4f4; }
main { max-width: 32rem; margin: 3rem auto; padding: 2rem; background: #ffffff; border-radius: 0.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin: 1rem 0 0.25rem; }
input { width: 100%; box-sizing: border-box; font: inherit; padding: 0.5rem; border: 1px solid #5a5a5a; border-radius: 0.25rem; }
.hint { font-size: 0.9375rem; color: #444444; margin: 0.25rem 0 0; }
button { margin-top: 1.5rem; font: inherit; font-weight: 600; padding: 0.625rem 1.25rem; color: #ffffff; background: #1f4e99; border: 0; border-radius: 0.25rem; cursor: pointer; }
button:disabled { background: #6b7a90; cursor: not-allowed; }
input:focus, button:focus, #outcome:focus { outline: 3px solid #f0a500; outline-offset: 2px; }
#outcome { margin-top: 1.5rem; padding: 0.75rem 1rem; border-radius: 0.25rem; }
#outcome:empty { display: none; }
#outcome.success { background: #e3f4e6; border: 1px solid #1e7b34; }
#outcome.error { background: #fbe9e9; border: 1px solid #b3261e; }
#outcome.pending { background: #eef2f8; border: 1px solid #1f4e99; }
`;

const SCRIPT = `
(function () {
  'use strict';
  var page = document.body.getAttribute('data-page');
  var token = new URLSearchParams(window.location.search).get('token');
  // the token is not shown again in the address bar or history once the page has it
  if (token) window.history.replaceState(null, '', window.location.pathname);
  var form = document.getElementById('form');
  var button = document.getElementById('submit');
  var outcome = document.getElementById('outcome');
  var verify = page === 'verify-email';

  function show(message, kind) {
    outcome.textContent = message;
    outcome.className = kind;
    outcome.focus();
  }
  function finish(message, kind) {
    form.hidden = true;
    show(message, kind);
  }
  if (!token) {
    finish('This link is incomplete: it carries no token. Open the link from the mail again, or copy the whole address into the browser.', 'error');
    return;
  }

  function refused(status, problem) {
    var code = problem && problem.code;
    if (status === 401 || code === 'invalid_grant') {
      finish(
        verify
          ? 'This link has expired or has already been used, so nothing was changed. Sign in and ask for a new verification mail if your address is not verified yet.'
          : 'This link has expired or has already been used, so your password was not changed. Ask for a new password reset mail.',
        'error'
      );
    } else if (code === 'email_taken') {
      finish('This address now belongs to another account, so the change could not be made.', 'error');
    } else if (status === 400 && problem && problem.errors && problem.errors.length > 0) {
      button.disabled = false;
      // the password policy explains itself in the problem's detail ("The password is ...")
      var detail = typeof problem.detail === 'string' && problem.detail.indexOf('The password ') === 0 ? problem.detail : '';
      show(
        (detail || 'The new password was not accepted: ' + problem.errors[0].message + '.') + ' Choose another one.',
        'error'
      );
    } else if (status === 429) {
      button.disabled = false;
      show('Too many attempts. Wait a few minutes, then try again.', 'error');
    } else {
      button.disabled = false;
      show('Something went wrong (error ' + status + '). Try again in a moment.', 'error');
    }
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var body = { token: token };
    if (!verify) {
      var password = document.getElementById('new-password').value;
      if (password !== document.getElementById('repeat-password').value) {
        show('The two passwords are not the same. Type the new password twice.', 'error');
        return;
      }
      body.new_password = password;
    }
    button.disabled = true;
    show(verify ? 'Verifying your email address…' : 'Setting your new password…', 'pending');
    fetch(verify ? '/v1/auth/verify-email' : '/v1/auth/reset', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store'
    })
      .then(function (response) {
        if (response.status === 204) {
          finish(
            verify
              ? 'Your email address is verified. You can close this page.'
              : 'Your password has been changed and every session of your account was signed out. Sign in with your new password.',
            'success'
          );
          return undefined;
        }
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (problem) {
            refused(response.status, problem);
          });
      })
      .catch(function () {
        button.disabled = false;
        show('The server could not be reached. Check your connection and try again.', 'error');
      });
  });
})();
`;

const sha256 = (content: string) => `'sha256-${createHash('sha256').update(content, 'utf8').digest('base64')}'`;

/** Only this page's own style and script; the script may talk to this origin only. */
export const ACCOUNT_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

function page(input: { name: string; title: string; intro: string; fields: string; button: string }): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${input.title} – Gatehouse</title>
<style>${STYLE}</style>
</head>
<body data-page="${input.name}">
<main>
<h1>${input.title}</h1>
<p>${input.intro}</p>
<noscript><p>This page needs JavaScript to send your request.</p></noscript>
<form id="form" novalidate>
${input.fields}<button id="submit" type="submit">${input.button}</button>
</form>
<div id="outcome" role="status" aria-live="polite" tabindex="-1"></div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

export const VERIFY_EMAIL_PAGE = page({
  name: 'verify-email',
  title: 'Verify your email address',
  intro: 'Press the button to confirm this email address for your Gatehouse account.',
  fields: '',
  button: 'Verify my email address',
});

export const RESET_PASSWORD_PAGE = page({
  name: 'reset-password',
  title: 'Choose a new password',
  intro: 'Type a new password for your Gatehouse account. Every session of the account will be signed out.',
  fields: `<label for="new-password">New password</label>
<input id="new-password" name="new_password" type="password" autocomplete="new-password" required aria-describedby="password-hint">
<p id="password-hint" class="hint">At least 15 characters. A few unrelated words make a good one.</p>
<label for="repeat-password">Repeat the new password</label>
<input id="repeat-password" name="repeat_password" type="password" autocomplete="new-password" required>
`,
  button: 'Set my new password',
});
