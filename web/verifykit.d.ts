// Types of web/verifykit.js. The wire contract is api/openapi.yaml.

/** The stable names of the service's refusals, and "network_error" for a request that got no envelope. */
export type ErrorName =
  | 'invalid_request'
  | 'invalid_phone_number'
  | 'invalid_email'
  | 'invalid_target'
  | 'invalid_verification_code'
  | 'invalid_captcha'
  | 'captcha_expired'
  | 'verification_expired'
  | 'captcha_used'
  | 'captcha_invalid'
  | 'user_not_found'
  | 'user_already_exists'
  | 'channel_disabled'
  | 'payload_too_large'
  | 'captcha_required'
  | 'rate_limit_exceeded'
  | 'too_many_attempts'
  | 'origin_not_allowed'
  | 'destination_blocked'
  | 'idempotency_key_reused'
  | 'idempotency_key_in_progress'
  | 'not_found'
  | 'method_not_allowed'
  | 'send_failed'
  | 'service_unavailable'
  | 'internal_error'
  | 'network_error';

/** Every refusal, thrown by send and verify. */
export class VerifykitError extends Error {
  /** HTTP status; 0 for network_error. */
  readonly status: number;
  readonly error: ErrorName;
  /** The envelope's numeric code; 0 for network_error. */
  readonly error_code: number;
  readonly error_description: string;
  /** On every 429: whole seconds until the same request can succeed. */
  readonly retry_after?: number;
  /** On invalid_verification_code: guesses left before the code dies. */
  readonly attempts_remaining?: number;
}

export type Target = 'ANY' | 'USER' | 'NOT_USER';

/** Exactly one of phone_number and email; target defaults to ANY. */
export type SendRequest =
  | { phone_number: string; email?: undefined; target?: Target; locale?: string }
  | { email: string; phone_number?: undefined; target?: Target; locale?: string };

export interface SendResponse {
  verification_id: string;
  expires_in: number;
  is_user: boolean;
}

export interface VerifyRequest {
  verification_id: string;
  verification_code: string;
}

export interface VerifyResponse {
  verification_token: string;
  expires_in: number;
}

/** What the page gets when a captcha must be solved. */
export interface CaptchaChallenge {
  /** The image as a data: URL, for an <img src>. */
  image: string;
  /** The image's token (the local server's GET /dev/outbox lists its answer). */
  token: string;
  /** 1 for the first image of this send, 2 after a wrong answer, ... */
  attempt: number;
  /** Why the page is asked: captcha_required, or the previous wrong answer. */
  error: VerifykitError;
}

export interface ClientOptions {
  /** The API's origin and stage, e.g. "https://api.example.com/prod"; "" for this page's origin. */
  baseURL?: string;
  /** Shows the image and resolves to the text the person read, or null to give up. */
  onCaptcha?: (challenge: CaptchaChallenge) => string | null | Promise<string | null>;
  /** The service's resend cooldown in seconds (default 60), for the countdown after an accepted send. */
  cooldown?: number;
  /** Images shown per send before giving up (default 3). */
  maxCaptchaRounds?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

export interface Client {
  /** Sends a code; on captcha_required runs the captcha through onCaptcha and retries once with x-captcha-token. */
  send(req: SendRequest): Promise<SendResponse>;
  verify(req: VerifyRequest): Promise<VerifyResponse>;
  /** Whole seconds until a send to this phone or email is allowed again (0 = now). */
  secondsUntilResend(req: SendRequest): number;
  /** Forgets the cached captcha token. */
  clearCaptcha(): void;
}

export function createClient(options?: ClientOptions): Client;

/** Waits for an SMS code with the WebOTP API; null where the browser has none or on abort. */
export function readOTP(options?: { signal?: AbortSignal }): Promise<string | null>;

/** The token's claims, WITHOUT checking the signature: for display only. */
export function decodeToken(token: string): {
  iss: string;
  aud: string | string[];
  sub: string;
  channel: 'sms' | 'email';
  target: Target;
  is_user: boolean;
  iat: number;
  exp: number;
  jti: string;
};
