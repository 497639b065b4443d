// The test harness around the CloudBase JS SDK (@cloudbase/auth and
// @cloudbase/oauth, as @cloudbase/js-sdk ships them): just enough of a
// browser for it to load in Node, a client built the way the SDK builds its
// own, a recorder of what it puts on the wire, and readers of the local
// server's GET /dev/outbox. Nothing here sends a request in the SDK's place:
// the tests call the SDK's functions, and the SDK calls fetch.
'use strict'

// The SDK's default (web) adapter reads window, localStorage and WebSocket
// when it is built, and the oauth client reads sessionStorage; Node 20 has
// fetch but none of these. In-memory stand-ins are enough: no test reloads.
function memoryStorage() {
  const m = new Map()
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)) },
    removeItem: (k) => { m.delete(k) },
    clear: () => m.clear(),
  }
}
globalThis.window ??= globalThis
globalThis.localStorage ??= memoryStorage()
globalThis.sessionStorage ??= memoryStorage()
globalThis.WebSocket ??= class WebSocket {}

const { generateAuthInstance } = require('@cloudbase/auth')
const { utils } = require('@cloudbase/utilities')

// The wire: every request the SDK makes through fetch, with its answer's
// status, in order.
const wire = []
const realFetch = globalThis.fetch
globalThis.fetch = async (url, options = {}) => {
  const headers = {}
  for (const [k, v] of Object.entries(options.headers || {})) headers[k.toLowerCase()] = String(v)
  const entry = { method: options.method || 'GET', url: new URL(url), headers, body: options.body }
  wire.push(entry)
  const resp = await realFetch(url, options)
  entry.status = resp.status
  return resp
}

function env(name) {
  const v = process.env[name]
  if (!v) {
    throw new Error(`${name} is not set: these tests run from Go (go test ./internal/app -run TestCloudBaseSDK), which starts the servers`)
  }
  return v
}

// The server's outbox: the messages it "sent" and the captchas it drew,
// with their answers (local mode only).
async function outbox(origin) {
  const resp = await realFetch(`${origin}/dev/outbox`)
  if (resp.status !== 200) throw new Error(`GET /dev/outbox: ${resp.status}`)
  return resp.json()
}

// codeFor is the code of the latest message to `to` (E.164 for a phone, the
// address as given for an email).
async function codeFor(origin, to) {
  const { messages } = await outbox(origin)
  const mine = messages.filter((m) => m.to === to)
  if (mine.length === 0) throw new Error(`no message to ${to} in the outbox`)
  return mine[mine.length - 1].code
}

// newClient builds the SDK's auth client as @cloudbase/js-sdk does for
// `cloudbase.init({env}).auth()` (generateAuthInstance, with the i18n header
// its app module configures), pointed at origin by apiOrigin. Each client
// has its own storage, so its own device id and captcha-token cache.
//
// The SDK's built-in captcha box is a DOM dialog; a page that has none (or
// wants its own) passes captchaOptions.openURIWithCallback, which receives
// the image as a data URI with the captcha's token and must resolve with
// the captcha_token. Ours reads the answer a person would type from
// /dev/outbox and submits it with the SDK's own verifyCaptchaData, as the
// built-in box does.
function newClient(origin) {
  const store = memoryStorage()
  const storage = {
    getItem: async (k) => store.getItem(k),
    setItem: async (k, v) => store.setItem(k, v),
    removeItem: async (k) => store.removeItem(k),
    getItemSync: (k) => store.getItem(k),
    setItemSync: (k, v) => store.setItem(k, v),
    removeItemSync: (k) => store.removeItem(k),
  }
  const client = { captchas: [], store }
  const openURIWithCallback = async (url) => {
    const { captchaData, token } = utils.parseCaptcha(url)
    const { captchas } = await outbox(origin)
    const drawn = captchas.find((c) => c.token === token)
    if (!drawn) throw new Error(`captcha ${token} not in /dev/outbox`)
    client.captchas.push({ token, image: captchaData, answer: drawn.answer })
    return client.oauth.authApi.verifyCaptchaData({ token, key: drawn.answer.toLowerCase() })
  }
  const { authInstance, oauthInstance } = generateAuthInstance(
    {
      sdkVersion: '3.3.3',
      storage,
      persistence: 'none',
      i18n: { t: (s) => s, LANG_HEADER_KEY: 'Accept-Language', lang: 'zh-CN' },
      captchaOptions: { openURIWithCallback },
    },
    { env: 'verifykit-test', clientId: 'verifykit-test', apiOrigin: origin },
  )
  client.auth = authInstance
  client.oauth = oauthInstance
  return client
}

// claims decodes a JWT's payload (no check: the Go tests validate tokens
// against the JWKS; here it only shows what was verified).
function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())
}

module.exports = { env, wire, outbox, codeFor, newClient, claims, realFetch }
