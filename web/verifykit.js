// verifykit browser client: one ES module, no dependencies.
//
// It sends a code, runs the image captcha when the service asks for one
// (captcha_required), keeps the captcha token for the next sends as the
// service allows (several sends per token, from the same IP, until it
// expires), tells how many seconds remain before a resend is allowed, checks
// a code, and reads the code from an SMS with the WebOTP API where the
// browser has it. Every refusal is thrown as a VerifykitError carrying the
// service's error envelope. The contract is api/openapi.yaml.

const SEND = '/auth/v1/verification';
const VERIFY = '/auth/v1/verification/verify';
const CAPTCHA = '/auth/v1/captcha/data';
const CAPTCHA_VERIFY = '/auth/v1/captcha/data/verify';

/** A refusal of the service (or a network failure, error "network_error"). */
export class VerifykitError extends Error {
  constructor(status, body) {
    super(body.error_description || body.error);
    this.name = 'VerifykitError';
    this.status = status;
    this.error = body.error;
    this.error_code = body.error_code;
    this.error_description = body.error_description;
    this.retry_after = body.retry_after;
    this.attempts_remaining = body.attempts_remaining;
  }
}

/**
 * createClient builds a client.
 * options.baseURL: the API's origin and stage ("" = this page's origin).
 * options.onCaptcha: called with {image, token, attempt, error} when a
 *   captcha must be solved; returns (or resolves to) the text the person
 *   read, or null to give up.
 * options.cooldown: the service's resend cooldown in seconds (default 60),
 *   used for the countdown after an accepted send; a 429's retry_after
 *   replaces it.
 * options.fetch, options.now: for tests.
 */
export function createClient(options = {}) {
  const base = (options.baseURL || '').replace(/\/$/, '');
  const doFetch = options.fetch || globalThis.fetch.bind(globalThis);
  const now = options.now || (() => Date.now());
  const cooldown = options.cooldown ?? 60;
  const maxCaptchaRounds = options.maxCaptchaRounds ?? 3;
  // The captcha token and when to stop using it: the service's lifetime
  // less a margin, as the API family's own SDK does.
  let captcha = null;
  const resendAt = new Map();

  async function call(path, body, headers = {}) {
    let res;
    try {
      res = await doFetch(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new VerifykitError(0, { error: 'network_error', error_code: 0, error_description: String(e && e.message || e) });
    }
    let json;
    try {
      json = await res.json();
    } catch {
      json = null;
    }
    if (res.ok && json) return json;
    if (!json || typeof json.error !== 'string') {
      json = { error: 'network_error', error_code: 0, error_description: `HTTP ${res.status} without an error envelope` };
    }
    if (json.retry_after === undefined) {
      const ra = Number.parseInt(res.headers.get('retry-after') || '', 10);
      if (ra > 0) json.retry_after = ra;
    }
    throw new VerifykitError(res.status, json);
  }

  function keyOf(req) {
    return req.phone_number != null ? 'phone:' + req.phone_number : 'email:' + String(req.email).toLowerCase();
  }

  function captchaHeader() {
    if (captcha && now() < captcha.until) return { 'x-captcha-token': captcha.token };
    captcha = null;
    return {};
  }

  // solveCaptcha asks the page to solve images until one is right, the
  // page gives up (null), or maxCaptchaRounds images were shown.
  async function solveCaptcha(cause) {
    let error = cause;
    for (let attempt = 1; attempt <= maxCaptchaRounds; attempt++) {
      const img = await call(CAPTCHA, {});
      if (!options.onCaptcha) throw cause;
      const key = await options.onCaptcha({ image: img.data, token: img.token, attempt, error });
      if (key == null || key === '') throw cause;
      try {
        const pass = await call(CAPTCHA_VERIFY, { token: img.token, key: String(key) });
        captcha = { token: pass.captcha_token, until: now() + Math.max(0, pass.expires_in - 10) * 1000 };
        return;
      } catch (e) {
        if (!(e instanceof VerifykitError) || !['invalid_captcha', 'captcha_expired', 'captcha_used'].includes(e.error)) throw e;
        error = e;
      }
    }
    throw error;
  }

  function noteWait(key, e) {
    if (e instanceof VerifykitError && e.retry_after > 0) resendAt.set(key, now() + e.retry_after * 1000);
  }

  return {
    /** Sends a code; runs the captcha when asked. Resolves to the send's answer. */
    async send(req) {
      // target defaults to ANY, as the service reads an absent one.
      const body = { target: 'ANY' };
      for (const k of ['target', 'phone_number', 'email', 'locale']) if (req[k] != null) body[k] = req[k];
      const key = keyOf(body);
      let solved = false;
      for (;;) {
        const header = captchaHeader();
        const hadToken = 'x-captcha-token' in header;
        try {
          const res = await call(SEND, body, header);
          resendAt.set(key, now() + cooldown * 1000);
          return res;
        } catch (e) {
          noteWait(key, e);
          const gate = e instanceof VerifykitError &&
            (e.error === 'captcha_required' || (e.error === 'captcha_invalid' && hadToken));
          if (!gate || solved) throw e;
          captcha = null;
          await solveCaptcha(e);
          solved = true;
        }
      }
    },

    /** Checks a code. Resolves to {verification_token, expires_in}. */
    verify(req) {
      return call(VERIFY, { verification_id: req.verification_id, verification_code: String(req.verification_code) });
    },

    /** Whole seconds until a send to this phone or email is allowed again. */
    secondsUntilResend(req) {
      const at = resendAt.get(keyOf(req));
      return at ? Math.max(0, Math.ceil((at - now()) / 1000)) : 0;
    },

    /** Forgets the cached captcha token. */
    clearCaptcha() {
      captcha = null;
    },
  };
}

/**
 * readOTP waits for the code of an incoming SMS with the WebOTP API (the
 * message's last line is "@<domain> #<code>", see WEBOTP_DOMAIN). Resolves to
 * the code, or null where the browser has no WebOTP or the read was aborted.
 */
export async function readOTP({ signal } = {}) {
  if (typeof window === 'undefined' || !('OTPCredential' in window) || !navigator.credentials) return null;
  try {
    const cred = await navigator.credentials.get({ otp: { transport: ['sms'] }, signal });
    return cred && cred.code ? cred.code : null;
  } catch {
    return null;
  }
}

/**
 * decodeToken returns the claims of a verification_token WITHOUT checking
 * its signature: for display only. A server validates tokens against
 * GET /auth/v1/.well-known/jwks.json.
 */
export function decodeToken(token) {
  const part = String(token).split('.')[1];
  if (!part) throw new Error('not a JWT');
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4);
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}
