// The demo page's script: the whole flow of web/verifykit.js on one page.
import { createClient, decodeToken, readOTP, VerifykitError } from '/verifykit.js';

const $ = (id) => document.getElementById(id);

// What a person reads for each refusal; the error name stays in data-error
// for tests and support.
const messages = {
  invalid_request: 'The request was malformed.',
  invalid_phone_number: 'Enter a mobile number as +86 followed by 11 digits, e.g. +86 13800138000.',
  invalid_email: 'Enter an email address such as you@example.com.',
  invalid_target: 'Choose ANY, USER or NOT_USER.',
  invalid_verification_code: 'Wrong code.',
  invalid_captcha: 'That was not the text in the image; here is a new one.',
  captcha_expired: 'The image expired; here is a new one.',
  captcha_used: 'That image was already used; here is a new one.',
  captcha_invalid: 'The captcha pass is no longer valid; please solve a new image.',
  captcha_required: 'Please solve the image to send a code.',
  verification_expired: 'This code expired or was already used. Send a new one.',
  user_not_found: 'No account uses this address.',
  user_already_exists: 'An account already uses this address.',
  channel_disabled: 'This channel is switched off.',
  payload_too_large: 'The request was too large.',
  rate_limit_exceeded: 'Too many codes. Please wait before sending another.',
  too_many_attempts: 'Too many wrong codes: this code no longer works. Send a new one.',
  origin_not_allowed: 'This page is not allowed to call the service.',
  destination_blocked: 'Codes cannot be sent to this number right now.',
  send_failed: 'The message could not be sent. Please try again.',
  service_unavailable: 'The service is unavailable. Please try again shortly.',
  internal_error: 'Something went wrong. Please try again.',
  network_error: 'The service could not be reached.',
};

function say(kind, text, error) {
  const m = $('message');
  m.className = kind;
  m.textContent = text;
  if (error) m.dataset.error = error;
  else delete m.dataset.error;
}

function sayError(e) {
  if (!(e instanceof VerifykitError)) {
    say('error', String(e));
    return;
  }
  let text = messages[e.error] || e.error_description;
  if (e.error === 'invalid_verification_code' && e.attempts_remaining !== undefined) {
    text += ` ${e.attempts_remaining} ${e.attempts_remaining === 1 ? 'try' : 'tries'} left.`;
  }
  if (e.retry_after > 0 && e.error !== 'too_many_attempts') text += ` Try again in ${e.retry_after} s.`;
  say('error', text, e.error);
}

// The captcha form answers the client's onCaptcha: it shows the image and
// resolves with the text typed, or null on Cancel.
let captchaAnswer = null;
async function onCaptcha({ image, attempt, error }) {
  if (attempt > 1 || error.error !== 'captcha_required') sayError(error);
  else say('info', messages.captcha_required, error.error);
  $('captcha-image').src = image;
  $('captcha-answer').value = '';
  $('captcha').hidden = false;
  $('captcha-answer').focus();
  return new Promise((resolve) => {
    captchaAnswer = resolve;
  });
}
function closeCaptcha(value) {
  $('captcha').hidden = true;
  if (captchaAnswer) captchaAnswer(value);
  captchaAnswer = null;
}
$('captcha').addEventListener('submit', (ev) => {
  ev.preventDefault();
  closeCaptcha($('captcha-answer').value.trim());
});
$('captcha-cancel').addEventListener('click', () => closeCaptcha(null));

const client = createClient({ onCaptcha, cooldown: Number(document.body.dataset.cooldown) || 60 });

function request() {
  const value = $('address').value.trim();
  const req = $('channel').value === 'phone' ? { phone_number: value } : { email: value };
  req.target = $('target').value;
  return req;
}

$('channel').addEventListener('change', () => {
  const phone = $('channel').value === 'phone';
  $('address-label').textContent = phone ? 'Mobile number' : 'Email';
  $('address').type = phone ? 'tel' : 'email';
  $('address').autocomplete = phone ? 'tel' : 'email';
  $('address').placeholder = phone ? '+86 13800138000' : 'you@example.com';
  $('address').value = '';
  tick();
});
$('address').addEventListener('input', () => tick());

// The send button counts down while the service would refuse a resend.
let sending = false;
function tick() {
  const left = $('address').value.trim() ? client.secondsUntilResend(request()) : 0;
  const b = $('send');
  b.disabled = sending || left > 0;
  b.textContent = sending ? 'Sending…' : left > 0 ? `Resend in ${left} s` : 'Send code';
}
setInterval(tick, 250);

let verificationID = null;
let otpAbort = null;

$('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const req = request();
  sending = true;
  tick();
  try {
    const sent = await client.send(req);
    verificationID = sent.verification_id;
    const minutes = Math.round(sent.expires_in / 60);
    say('ok', `Code sent. It is valid for ${minutes} minutes.`);
    $('verify-form').hidden = false;
    $('result').hidden = true;
    $('code').value = '';
    $('code').focus();
    if (req.phone_number) listenForSMS();
  } catch (e) {
    sayError(e);
  } finally {
    sending = false;
    $('captcha').hidden = true;
    tick();
  }
});

// Where the browser has WebOTP, the SMS's code fills the field itself.
async function listenForSMS() {
  if (otpAbort) otpAbort.abort();
  otpAbort = new AbortController();
  const code = await readOTP({ signal: otpAbort.signal });
  if (code) {
    $('code').value = code;
    $('verify-form').requestSubmit();
  }
}

$('verify-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (otpAbort) otpAbort.abort();
  $('verify').disabled = true;
  try {
    const res = await client.verify({ verification_id: verificationID, verification_code: $('code').value.trim() });
    say('ok', 'Verified.');
    $('claims').textContent = JSON.stringify(decodeToken(res.verification_token), null, 2);
    $('result').hidden = false;
    $('verify-form').hidden = true;
  } catch (e) {
    sayError(e);
  } finally {
    $('verify').disabled = false;
  }
});
