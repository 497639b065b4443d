// Tests of web/verifykit.js against the real local server, started by
// web/client_test.go: VERIFYKIT_URL with the captcha gate off,
// VERIFYKIT_CAPTCHA_URL with the gate after one send per IP.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, decodeToken, readOTP, VerifykitError } from '../verifykit.js';

const base = process.env.VERIFYKIT_URL;
const gated = process.env.VERIFYKIT_CAPTCHA_URL;
// oneUse asks for a captcha from an IP's second send, and a captcha token
// serves one send (CAPTCHA_TOKEN_USES=1).
const oneUse = process.env.VERIFYKIT_ONE_USE_URL;
if (!base || !gated) throw new Error('run through `go test ./web` (VERIFYKIT_URL and VERIFYKIT_CAPTCHA_URL)');

async function outbox(url) {
  const res = await fetch(url + '/dev/outbox');
  assert.equal(res.status, 200);
  return res.json();
}

async function codeFor(url, to) {
  const { messages } = await outbox(url);
  const m = messages.filter((m) => m.to === to).at(-1);
  assert.ok(m, `no message to ${to}`);
  return m.code;
}

async function answerOf(url, token) {
  const { captchas } = await outbox(url);
  const c = captchas.find((c) => c.token === token);
  assert.ok(c, 'captcha not in the outbox');
  return c.answer;
}

async function rejects(promise, name) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof VerifykitError, `not a VerifykitError: ${e}`);
    assert.equal(e.error, name, `error ${e.error} (${e.error_description}), want ${name}`);
    assert.equal(typeof e.error_code, 'number');
    assert.ok(e.error_description);
    return e;
  }
  assert.fail(`resolved, want ${name}`);
}

for (const [name, req, sub, channel] of [
  ['email', { email: 'Web.User@Example.com', target: 'ANY' }, 'web.user@example.com', 'email'],
  ['phone, default target', { phone_number: '+86 13800138001' }, '+8613800138001', 'sms'],
]) {
  test(`send by ${name}, verify, decode the token`, async () => {
    const c = createClient({ baseURL: base });
    const sent = await c.send(req);
    assert.equal(typeof sent.verification_id, 'string');
    assert.equal(sent.is_user, false);
    const code = await codeFor(base, req.email ?? req.phone_number.replace(/\s/g, ''));
    const ok = await c.verify({ verification_id: sent.verification_id, verification_code: code });
    const claims = decodeToken(ok.verification_token);
    assert.equal(claims.sub, sub);
    assert.equal(claims.channel, channel);
    assert.equal(claims.target, 'ANY');
  });
}

test('a second send inside the cooldown: rate_limit_exceeded with retry_after, and the countdown', async () => {
  const c = createClient({ baseURL: base, cooldown: 0 });
  const req = { email: 'twice@example.com' };
  await c.send(req);
  assert.equal(c.secondsUntilResend(req), 0, 'cooldown option 0: no countdown before the service says one');
  const e = await rejects(c.send(req), 'rate_limit_exceeded');
  assert.equal(e.status, 429);
  assert.equal(e.error_code, 4029);
  assert.ok(e.retry_after >= 1, `retry_after ${e.retry_after}`);
  const left = c.secondsUntilResend(req);
  assert.ok(left >= 1 && left <= e.retry_after, `countdown ${left}, retry_after ${e.retry_after}`);
  assert.equal(c.secondsUntilResend({ email: 'someone.else@example.com' }), 0);
});

test('the countdown starts at the cooldown after an accepted send', async () => {
  let t = 1_000_000;
  const c = createClient({ baseURL: base, cooldown: 60, now: () => t });
  const req = { email: 'countdown@example.com' };
  await c.send(req);
  assert.equal(c.secondsUntilResend(req), 60);
  t += 59_500;
  assert.equal(c.secondsUntilResend(req), 1);
  t += 500;
  assert.equal(c.secondsUntilResend(req), 0);
});

test('field errors arrive as typed errors', async () => {
  const c = createClient({ baseURL: base });
  const e = await rejects(c.send({ phone_number: '13800138000' }), 'invalid_phone_number');
  assert.equal(e.status, 400);
  assert.equal(e.error_code, 4001);
  await rejects(c.send({ email: 'not an email' }), 'invalid_email');
  await rejects(c.send({ email: 'a@b.c', target: 'SOMEONE' }), 'invalid_target');
  await rejects(c.verify({ verification_id: 'nope', verification_code: '123456' }), 'verification_expired');
});

test('a wrong code: invalid_verification_code with attempts_remaining', async () => {
  const c = createClient({ baseURL: base });
  const sent = await c.send({ email: 'wrong.code@example.com' });
  const right = await codeFor(base, 'wrong.code@example.com');
  const wrong = right === '000000' ? '111111' : '000000';
  const e = await rejects(c.verify({ verification_id: sent.verification_id, verification_code: wrong }), 'invalid_verification_code');
  assert.equal(e.attempts_remaining, 4);
});

test('a network failure is a typed error too', async () => {
  const c = createClient({ baseURL: 'http://127.0.0.1:1' });
  const e = await rejects(c.send({ email: 'a@b.c' }), 'network_error');
  assert.equal(e.status, 0);
});

test('readOTP without WebOTP (Node) resolves to null', async () => {
  assert.equal(await readOTP(), null);
});

test('captcha_required: the image goes to the page, a wrong answer asks again, the token serves the next sends', async () => {
  const challenges = [];
  const calls = []; // every request and its answer's error name
  const c = createClient({
    baseURL: gated,
    async fetch(url, init) {
      const res = await fetch(url, init);
      const copy = res.clone();
      const body = await copy.json().catch(() => ({}));
      calls.push({ url, token: init.headers['x-captcha-token'], error: body.error });
      return res;
    },
    async onCaptcha(ch) {
      challenges.push(ch);
      assert.match(ch.image, /^data:image\/png;base64,/);
      // The first answer is wrong on purpose; the second is the outbox's.
      return ch.attempt === 1 ? 'wrong!' : answerOf(gated, ch.token);
    },
  });
  await c.send({ email: 'first@example.com' }); // the IP's first send: no gate yet
  assert.equal(challenges.length, 0);
  const sent = await c.send({ email: 'second@example.com' });
  assert.ok(sent.verification_id);
  assert.equal(challenges.length, 2);
  assert.equal(challenges[0].error.error, 'captcha_required');
  assert.equal(challenges[1].error.error, 'invalid_captcha');
  const solved = calls.at(-1);
  assert.ok(solved.token, 'the retry carried no x-captcha-token');
  // The next send goes first with the cached token, which this server lets
  // serve several sends (CAPTCHA_TOKEN_USES, default 5): no new image.
  const before = calls.length;
  await c.send({ phone_number: '+8613800138002' });
  const next = calls[before];
  assert.equal(next.token, solved.token, 'the next send did not reuse the cached token');
  assert.equal(next.error, undefined);
  assert.equal(challenges.length, 2);
});

test('captcha_invalid on a spent cached token: the client solves a new image and sends again', async () => {
  const challenges = [];
  const calls = [];
  const c = createClient({
    baseURL: oneUse,
    async fetch(url, init) {
      const res = await fetch(url, init);
      const body = await res.clone().json().catch(() => ({}));
      calls.push({ url, token: init.headers['x-captcha-token'], error: body.error });
      return res;
    },
    onCaptcha: (ch) => { challenges.push(ch); return answerOf(oneUse, ch.token); },
  });
  await c.send({ email: 'one@example.com' });
  await c.send({ email: 'two@example.com' }); // gated: one image, its token spent by this send
  assert.equal(challenges.length, 1);
  const spent = calls.at(-1).token;
  const before = calls.length;
  const sent = await c.send({ email: 'three@example.com' });
  assert.ok(sent.verification_id);
  assert.equal(calls[before].token, spent, 'the send did not go first with the cached token');
  assert.equal(calls[before].error, 'captcha_invalid');
  assert.equal(challenges.length, 2, 'no new image after captcha_invalid');
  assert.notEqual(calls.at(-1).token, spent);
  assert.equal(calls.at(-1).error, undefined);
});

test('captcha_required: a page that gives up gets the refusal', async () => {
  const c = createClient({ baseURL: gated, onCaptcha: () => null });
  await rejects(c.send({ email: 'gives.up@example.com' }), 'captcha_required');
  const none = createClient({ baseURL: gated });
  await rejects(none.send({ email: 'no.callback@example.com' }), 'captcha_required');
});
