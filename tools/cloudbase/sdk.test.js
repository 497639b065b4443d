// The CloudBase JS SDK against the local server, as its users run it: every
// call below is one of the SDK's own functions (getVerification, verify,
// signUp and its verifyOtp, signInWithOtp, resend, and the captcha flow it
// runs by itself on captcha_required); the harness only answers the
// captcha callback and reads codes from /dev/outbox.
//
// Run by internal/app/sdk_test.go (`make test`), which starts the servers
// (fresh ones for each store, memory and DynamoDB Local):
//   VERIFYKIT_API_ORIGIN          gates off, CORS_ALLOWED_ORIGINS=VERIFYKIT_CORS_ORIGIN,
//                                 existing@example.com is a user
//   VERIFYKIT_CAPTCHA_API_ORIGIN  CAPTCHA_IP_THRESHOLD=1 (every send after an IP's first
//                                 needs a captcha), CAPTCHA_LENGTH=4 (the SDK box's length)
//   VERIFYKIT_SINGLE_USE_CAPTCHA_API_ORIGIN
//                                 as VERIFYKIT_CAPTCHA_API_ORIGIN, with CAPTCHA_TOKEN_USES=1
//                                 (a captcha token serves one accepted send)
'use strict'

const test = require('node:test')
const assert = require('node:assert/strict')
const { env, wire, codeFor, newClient, claims, realFetch } = require('./harness')

const api = env('VERIFYKIT_API_ORIGIN')
const gated = env('VERIFYKIT_CAPTCHA_API_ORIGIN')
const singleUse = env('VERIFYKIT_SINGLE_USE_CAPTCHA_API_ORIGIN')
const corsOrigin = env('VERIFYKIT_CORS_ORIGIN')

// sends is what the SDK put on the wire for POST /auth/v1/verification
// since mark.
function sends(mark) {
  return wire.slice(mark).filter((r) => r.method === 'POST' && r.url.pathname === '/auth/v1/verification')
}

test('phone with target: getVerification, then verify gives the token', async () => {
  const { auth } = newClient(api)
  const mark = wire.length
  // The SDK writes "+86 " in front of a bare mainland number itself.
  const sent = await auth.getVerification({ phone_number: '13800138000', target: 'ANY' })
  assert.equal(typeof sent.verification_id, 'string')
  assert.equal(sent.expires_in, 600)
  assert.equal(sent.is_user, false)
  const [req] = sends(mark)
  assert.deepEqual(JSON.parse(req.body), { phone_number: '+86 13800138000', target: 'ANY' })
  // What the SDK sends besides the body: the client_id on the URL, its ids
  // and version in headers, and the JSON as text/plain (fetch's default for
  // a string body).
  assert.equal(req.url.searchParams.get('client_id'), 'verifykit-test')
  for (const h of ['x-request-id', 'x-device-id', 'x-sdk-version', 'accept-language']) assert.ok(req.headers[h], `no ${h}`)

  const code = await codeFor(api, '+8613800138000')
  const verified = await auth.verify({ verification_id: sent.verification_id, verification_code: code })
  assert.equal(verified.expires_in, 600)
  const c = claims(verified.verification_token)
  assert.equal(c.sub, '+8613800138000')
  assert.equal(c.channel, 'sms')
  assert.equal(c.target, 'ANY')
})

test('email with target: resend (type signup sends ANY), then verify', async () => {
  const { auth } = newClient(api)
  const mark = wire.length
  const { data, error } = await auth.resend({ email: 'Resend@Example.com', type: 'signup' })
  assert.equal(error, null)
  assert.deepEqual(JSON.parse(sends(mark)[0].body), { target: 'ANY', email: 'Resend@Example.com' })
  const code = await codeFor(api, 'Resend@Example.com')
  const verified = await auth.verify({ verification_id: data.messageId, verification_code: code })
  const c = claims(verified.verification_token)
  assert.equal(c.sub, 'resend@example.com')
  assert.equal(c.channel, 'email')
})

test('email with target USER for an existing user: is_user', async () => {
  const { auth } = newClient(api)
  const sent = await auth.getVerification({ email: 'existing@example.com', target: 'USER' })
  assert.equal(sent.is_user, true)
})

test('email without target: the SDK\'s signUp flow sends, verifyOtp verifies', async () => {
  const { auth } = newClient(api)
  const mark = wire.length
  const { data, error } = await auth.signUp({ email: 'signup@example.com' })
  assert.equal(error, null)
  assert.equal(typeof data.verifyOtp, 'function')
  // No target in the body: this service takes it as ANY.
  assert.deepEqual(JSON.parse(sends(mark)[0].body), { email: 'signup@example.com' })

  const code = await codeFor(api, 'signup@example.com')
  const after = wire.length
  const res = await data.verifyOtp({ token: code })
  // verifyOtp verifies the code here, then hands the verification_token to
  // the auth platform's own POST /auth/v1/signup, which this service does
  // not serve: that last step is the only refusal.
  const calls = wire.slice(after).map((r) => `${r.method} ${r.url.pathname} ${r.status}`)
  assert.deepEqual(calls, ['POST /auth/v1/verification/verify 200', 'POST /auth/v1/signup 404'])
  assert.equal(res.error.status, 'not_found')
})

test('phone without target: the SDK\'s signInWithOtp sends', async () => {
  const { auth } = newClient(api)
  const mark = wire.length
  const { data, error } = await auth.signInWithOtp({ phone: '13800138002' })
  assert.equal(error, null)
  assert.equal(typeof data.verifyOtp, 'function')
  assert.deepEqual(JSON.parse(sends(mark)[0].body), { phone_number: '+86 13800138002' })
  assert.match(await codeFor(api, '+8613800138002'), /^\d{6}$/)
})

test('a second send inside the cooldown: the SDK throws the envelope as it came', async () => {
  const { auth } = newClient(api)
  await auth.getVerification({ email: 'cooldown@example.com', target: 'ANY' })
  await assert.rejects(auth.getVerification({ email: 'cooldown@example.com', target: 'ANY' }), (err) => {
    assert.equal(err.error, 'rate_limit_exceeded')
    assert.equal(err.error_code, 4029)
    assert.ok(err.retry_after > 0 && err.retry_after <= 60, `retry_after ${err.retry_after}`)
    assert.match(err.error_description, /\d+ seconds/)
    assert.equal(err.error_uri, '/auth/v1/verification')
    return true
  })
})

test('a wrong code: invalid_verification_code with attempts_remaining, and the right code still works', async () => {
  const { auth } = newClient(api)
  const sent = await auth.getVerification({ email: 'wrong@example.com', target: 'ANY' })
  const code = await codeFor(api, 'wrong@example.com')
  const wrong = code === '000000' ? '111111' : '000000'
  await assert.rejects(auth.verify({ verification_id: sent.verification_id, verification_code: wrong }), (err) => {
    assert.equal(err.error, 'invalid_verification_code')
    assert.equal(err.error_code, 4001)
    assert.equal(err.attempts_remaining, 4)
    return true
  })
  const verified = await auth.verify({ verification_id: sent.verification_id, verification_code: code })
  assert.equal(claims(verified.verification_token).sub, 'wrong@example.com')
})

test('the SDK\'s captcha flow, twice within one token\'s lifetime', async (t) => {
  const client = newClient(gated)
  const { auth } = client
  const start = wire.length
  // An IP's first send passes the gate; from then on every send needs a captcha.
  await auth.getVerification({ email: 'captcha0@example.com', target: 'ANY' })

  await t.test('first: captcha_required, the SDK fetches, solves and retries with ?captcha_token=', async () => {
    const mark = wire.length
    const sent = await auth.getVerification({ email: 'captcha1@example.com', target: 'ANY' })
    assert.equal(typeof sent.verification_id, 'string')
    assert.equal(client.captchas.length, 1)
    const [{ image, answer }] = client.captchas
    assert.match(image, /^data:image\/png;base64,/)
    assert.equal(answer.length, 4, 'CAPTCHA_LENGTH=4 fits the SDK\'s box')
    const calls = wire.slice(mark).map((r) => `${r.method} ${r.url.pathname} ${r.status}`)
    assert.deepEqual(calls, [
      'POST /auth/v1/verification 428',
      'POST /auth/v1/captcha/data 200',
      'POST /auth/v1/captcha/data/verify 200',
      'POST /auth/v1/verification 200',
    ])
    const [first, retry] = sends(mark)
    assert.equal(first.url.searchParams.get('captcha_token'), null)
    assert.ok(retry.url.searchParams.get('captcha_token').startsWith('v2.'))
    assert.equal(retry.headers['x-captcha-token'], undefined, 'the SDK never sends the header')
    assert.deepEqual(JSON.parse(retry.body), { email: 'captcha1@example.com', target: 'ANY' })
  })

  // The SDK caches the captcha_token until expires_in - 10 s and sends it
  // again on the next captcha_required, without showing a new captcha. A
  // strictly single-use token leaves the user on captcha_invalid until the
  // cache expires; CAPTCHA_TOKEN_USES lets it serve a few sends.
  await t.test('second: the cached token is sent again and accepted, no new captcha', async () => {
    const mark = wire.length
    const sent = await auth.getVerification({ email: 'captcha2@example.com', target: 'ANY' })
    assert.equal(typeof sent.verification_id, 'string')
    assert.equal(client.captchas.length, 1, 'a second captcha was drawn')
    const calls = wire.slice(mark).map((r) => `${r.method} ${r.url.pathname} ${r.status}`)
    assert.deepEqual(calls, ['POST /auth/v1/verification 428', 'POST /auth/v1/verification 200'])
    const tokens = wire.slice(start).filter((r) => r.url.searchParams.has('captcha_token')).map((r) => r.url.searchParams.get('captcha_token'))
    assert.equal(new Set(tokens).size, 1, 'both retries carry the one cached token')
  })
})

// calls is what the SDK put on the wire since mark, one "METHOD path status"
// a request.
function calls(mark) {
  return wire.slice(mark).map((r) => `${r.method} ${r.url.pathname} ${r.status}`)
}

// The README's "What the SDK does that the API document does not say": once
// the cached token's CAPTCHA_TOKEN_USES are spent, a plain getVerification
// resends it on captcha_required and shows captcha_invalid (it retries once,
// with the cached token only), and getVerification(params, { withCaptcha:
// true }) draws a new captcha on that captcha_invalid.
test('a spent captcha token: plain sends show captcha_invalid, withCaptcha draws a new captcha', async (t) => {
  const client = newClient(singleUse)
  const { auth } = client
  let cached // the token the SDK cached from the first captcha
  const tokenOf = (r) => r.url.searchParams.get('captcha_token')
  {
    // An IP's first send passes the gate.
    const mark = wire.length
    await auth.getVerification({ email: 'spent0@example.com', target: 'ANY' })
    assert.deepEqual(calls(mark), ['POST /auth/v1/verification 200'])
  }

  await t.test('captcha_required: the SDK solves a captcha, and the accepted send spends its one use', async () => {
    const mark = wire.length
    const sent = await auth.getVerification({ email: 'spent1@example.com', target: 'ANY' })
    assert.equal(typeof sent.verification_id, 'string')
    assert.equal(client.captchas.length, 1)
    assert.deepEqual(calls(mark), [
      'POST /auth/v1/verification 428',
      'POST /auth/v1/captcha/data 200',
      'POST /auth/v1/captcha/data/verify 200',
      'POST /auth/v1/verification 200',
    ])
    cached = tokenOf(sends(mark)[1])
    assert.ok(cached.startsWith('v2.'), cached)
  })

  await t.test('a plain getVerification: the cached token is resent and refused, captcha_invalid reaches the page, no new captcha', async () => {
    // Twice: the SDK keeps its cached token, so the same thing happens on
    // every call until the token's cache time runs out.
    for (let i = 0; i < 2; i++) {
      const mark = wire.length
      await assert.rejects(auth.getVerification({ email: 'spent2@example.com', target: 'ANY' }), (err) => {
        assert.equal(err.error, 'captcha_invalid')
        assert.equal(err.error_code, 4003)
        return true
      })
      assert.deepEqual(calls(mark), ['POST /auth/v1/verification 428', 'POST /auth/v1/verification 403'], `call ${i + 1}`)
      const [first, retry] = sends(mark)
      assert.equal(tokenOf(first), null)
      assert.equal(tokenOf(retry), cached, 'the retry carries the cached token')
      assert.equal(client.captchas.length, 1, 'a new captcha was drawn')
    }
  })

  await t.test('the same send with { withCaptcha: true }: the cached token first, then a new captcha, and it is sent', async () => {
    const mark = wire.length
    const sent = await auth.getVerification({ email: 'spent2@example.com', target: 'ANY' }, { withCaptcha: true })
    assert.equal(typeof sent.verification_id, 'string')
    assert.deepEqual(calls(mark), [
      'POST /auth/v1/verification 403',
      'POST /auth/v1/captcha/data 200',
      'POST /auth/v1/captcha/data/verify 200',
      'POST /auth/v1/verification 200',
    ])
    assert.equal(client.captchas.length, 2)
    const [first, retry] = sends(mark)
    assert.equal(tokenOf(first), cached, 'the first attempt carries the cached token')
    assert.ok(tokenOf(retry).startsWith('v2.'))
    assert.notEqual(tokenOf(retry), cached, 'the retry carries the new token')
    assert.match(await codeFor(singleUse, 'spent2@example.com'), /^\d{6}$/)
  })

  await t.test('{ withCaptcha: true } with nothing cached: a captcha before the first attempt', async () => {
    const fresh = newClient(singleUse)
    const mark = wire.length
    const sent = await fresh.auth.getVerification({ email: 'spent3@example.com', target: 'ANY' }, { withCaptcha: true })
    assert.equal(typeof sent.verification_id, 'string')
    assert.deepEqual(calls(mark), [
      'POST /auth/v1/captcha/data 200',
      'POST /auth/v1/captcha/data/verify 200',
      'POST /auth/v1/verification 200',
    ])
    assert.equal(fresh.captchas.length, 1)
    assert.ok(tokenOf(sends(mark)[0]).startsWith('v2.'))
  })
})

test('a preflight with the headers the SDK sends is allowed', async () => {
  const { auth } = newClient(api)
  const mark = wire.length
  await auth.getVerification({ email: 'preflight@example.com', target: 'ANY' })
  // The names a browser would list in Access-Control-Request-Headers: every
  // header the SDK set on that request.
  const names = Object.keys(sends(mark)[0].headers).sort()
  assert.ok(names.includes('x-sdk-version') && names.includes('x-device-id'), names.join())
  const preflight = (headers) => realFetch(`${api}/auth/v1/verification`, {
    method: 'OPTIONS',
    headers: { Origin: corsOrigin, 'Access-Control-Request-Method': 'POST', ...headers },
  })
  const resp = await preflight({ 'Access-Control-Request-Headers': names.join(',') })
  assert.equal(resp.status, 204)
  assert.equal(resp.headers.get('access-control-allow-origin'), corsOrigin)
  assert.equal(resp.headers.get('access-control-allow-methods'), 'POST')
  const allowed = resp.headers.get('access-control-allow-headers').split(',').map((s) => s.trim())
  for (const n of names) assert.ok(allowed.includes(n), `${n} not allowed: ${allowed}`)
  // Without the list (a proxy that drops it), the SDK's headers are still allowed.
  const bare = await preflight({})
  const defaults = bare.headers.get('access-control-allow-headers').split(',').map((s) => s.trim())
  for (const n of ['content-type', 'x-captcha-token', 'idempotency-key', 'x-request-id', 'x-device-id', 'x-sdk-version', 'accept-language']) {
    assert.ok(defaults.includes(n), `${n} not in the default list: ${defaults}`)
  }
})
