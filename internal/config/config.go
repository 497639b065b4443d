// Package config reads every setting of the service from the environment
// once, at start-up, and validates them all together.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/verifykit/verifykit/internal/kdf"
)

// Config is the whole configuration. Nothing else reads the environment.
type Config struct {
	Lambda bool // running under the Lambda runtime (AWS_LAMBDA_RUNTIME_API set)

	VerificationTable string // empty: embedded in-memory store
	UsersTable        string // empty: embedded directory (DevUsers)
	DevUsers          []string

	Channels            []string // "sms", "email"
	SMSSender           string   // outbox | sns
	EmailSender         string   // outbox | ses | smtp
	SMTPURL             string
	SMTPURLSecretARN    string
	EmailFrom           string
	SESConfigurationSet string
	SMSSenderID         string

	// The SMS autofill lines (all optional): see notify.Autofill.
	WebOTPDomain   string
	AndroidAppHash string
	SMSSignature   string

	CodeTTL                time.Duration
	ResendCooldown         time.Duration
	IPHourlyLimit          int
	TargetDailyLimit       int
	CaptchaIPThreshold     int
	CaptchaTargetThreshold int
	MaxVerifyAttempts      int
	VerifyIPHourlyLimit    int
	CaptchaIPHourlyLimit   int
	CaptchaMaxAttempts     int
	CaptchaTokenUses       int
	AllowedPhoneRegions    []string
	DefaultLocale          string
	CaptchaTTL             time.Duration
	CaptchaLength          int // characters in a captcha image, 4-6
	TokenTTL               time.Duration
	TokenIssuer            string
	TokenAudience          string

	KeysSecretARN string
	HMACKey       []byte // from HMAC_KEY (base64)
	SigningKeyPEM string // from SIGNING_KEY
	// KeysRefresh is how often a warm instance re-reads KEYS_SECRET_ARN, so
	// a rotated key reaches every instance without a cold start.
	KeysRefresh time.Duration

	// SMS pumping defences (docs/security-pumping.md).
	SMSHourlyBudget        int      // accepted SMS per rolling hour, 0 = off
	SMSPrefixLength        int      // digits of a number's breaker prefix
	PumpingUnverifiedLimit int      // breaker threshold, 0 = off
	SMSPrefixAllow         []string // prefixes the breaker never gates
	SMSPrefixBlock         []string // prefixes always refused
	SMSMaxPrice            string   // USD, as given ("0.05"); "" = no cap

	CORSAllowedOrigins []string
	IPv6PrefixBits     int // IPv6 clients share one IP key per prefix of this length
	TrustedProxyHops   int // trusted proxies in front of API Gateway; 0 ignores X-Forwarded-For
	Addr               string
	LogLevel           string
	MetricsNamespace   string
}

// Checks lets the caller validate values whose rules live in other packages
// (phone regions, locales) without config importing them.
type Checks struct {
	Region func(string) bool
	Locale func(string) bool
}

// Load reads the configuration from getenv. It reports every problem at once,
// each naming its variable.
func Load(getenv func(string) string, checks Checks) (*Config, error) {
	l := loader{getenv: getenv}
	c := &Config{
		Lambda:              getenv("AWS_LAMBDA_RUNTIME_API") != "",
		VerificationTable:   getenv("VERIFICATION_TABLE"),
		UsersTable:          getenv("USERS_TABLE"),
		SMTPURL:             getenv("SMTP_URL"),
		SMTPURLSecretARN:    getenv("SMTP_URL_SECRET_ARN"),
		EmailFrom:           getenv("EMAIL_FROM"),
		SESConfigurationSet: getenv("SES_CONFIGURATION_SET"),
		SMSSenderID:         getenv("SMS_SENDER_ID"),
		KeysSecretARN:       getenv("KEYS_SECRET_ARN"),
		SigningKeyPEM:       getenv("SIGNING_KEY"),
		TokenIssuer:         l.str("TOKEN_ISSUER", "verifykit"),
		TokenAudience:       l.str("TOKEN_AUDIENCE", "verifykit"),
		Addr:                l.str("ADDR", "127.0.0.1:3000"),
		MetricsNamespace:    l.str("METRICS_NAMESPACE", "Verifykit"),
		LogLevel:            l.oneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
	}
	defSMS, defEmail := "outbox", "outbox"
	if c.Lambda {
		defSMS, defEmail = "sns", "ses"
	}
	c.SMSSender = l.oneOf("SMS_SENDER", defSMS, "outbox", "sns")
	c.EmailSender = l.oneOf("EMAIL_SENDER", defEmail, "outbox", "ses", "smtp")
	c.Channels = l.list("CHANNELS", "sms,email", func(v string) bool { return v == "sms" || v == "email" })
	c.CodeTTL = l.seconds("CODE_TTL_SECONDS", 600)
	c.ResendCooldown = l.seconds("RESEND_COOLDOWN_SECONDS", 60)
	c.IPHourlyLimit = l.bounded("IP_HOURLY_LIMIT", 10, 1, MaxLimit)
	c.TargetDailyLimit = l.bounded("TARGET_DAILY_LIMIT", 10, 1, MaxLimit)
	c.CaptchaIPThreshold = l.bounded("CAPTCHA_IP_THRESHOLD", 3, 0, MaxLimit)
	c.CaptchaTargetThreshold = l.bounded("CAPTCHA_TARGET_THRESHOLD", 3, 0, MaxLimit)
	c.MaxVerifyAttempts = l.bounded("MAX_VERIFY_ATTEMPTS", 5, 1, MaxLimit)
	// Each of these is that many attributes of one DynamoDB item, and an
	// update expression holds at most about 100 of them (internal/dynamo).
	c.VerifyIPHourlyLimit = l.bounded("VERIFY_IP_HOURLY_LIMIT", 60, 1, MaxLimit)
	c.CaptchaIPHourlyLimit = l.bounded("CAPTCHA_IP_HOURLY_LIMIT", 30, 1, MaxLimit)
	c.CaptchaMaxAttempts = l.bounded("CAPTCHA_MAX_ATTEMPTS", 3, 1, MaxLimit)
	c.CaptchaTokenUses = l.bounded("CAPTCHA_TOKEN_USES", 5, 1, MaxLimit)
	c.CaptchaTTL = l.seconds("CAPTCHA_TTL_SECONDS", 300)
	// 4 fits the CloudBase JS SDK's built-in captcha box (its input takes 4
	// characters); more than 6 is more than a person reads reliably, and
	// fewer than 4 too few answers for three guesses to be a bar.
	c.CaptchaLength = l.bounded("CAPTCHA_LENGTH", 5, 4, 6)
	c.TokenTTL = l.seconds("TOKEN_TTL_SECONDS", 600)
	c.KeysRefresh = l.seconds("KEYS_REFRESH_SECONDS", 300)
	c.AllowedPhoneRegions = l.list("ALLOWED_PHONE_REGIONS", "CN", checks.Region)
	c.SMSHourlyBudget = l.bounded("SMS_HOURLY_BUDGET", 1000, 0, 1000000)
	c.SMSPrefixLength = l.bounded("SMS_PREFIX_LENGTH", 7, 1, 15)
	c.PumpingUnverifiedLimit = l.bounded("PUMPING_UNVERIFIED_LIMIT", 20, 0, 1000000)
	c.SMSPrefixAllow = l.prefixes("SMS_PREFIX_ALLOW")
	c.SMSPrefixBlock = l.prefixes("SMS_PREFIX_BLOCK")
	if v := getenv("SMS_MAX_PRICE"); v != "" {
		// SNS takes the cap as a decimal number of US dollars.
		if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 || f > 100 || strings.ContainsAny(v, "eEinfINFxXpP_") {
			l.fail("SMS_MAX_PRICE", "must be a price in US dollars above 0 and at most 100, like 0.05, got %q", v)
		}
		c.SMSMaxPrice = v
	}
	c.DefaultLocale = l.str("DEFAULT_LOCALE", "zh-CN")
	if checks.Locale != nil && !checks.Locale(c.DefaultLocale) {
		l.fail("DEFAULT_LOCALE", "unknown locale %q", c.DefaultLocale)
	}
	c.WebOTPDomain = l.webOTPDomain("WEBOTP_DOMAIN")
	c.AndroidAppHash = l.androidAppHash("ANDROID_APP_HASH")
	c.SMSSignature = l.smsSignature("SMS_SIGNATURE")
	if v := getenv("HMAC_KEY"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || kdf.Check("HMAC_KEY", key) != nil {
			l.fail("HMAC_KEY", "must be base64 of at least 32 bytes")
		}
		c.HMACKey = key
	}
	if v := getenv("DEV_USERS"); v != "" {
		if c.Lambda {
			l.fail("DEV_USERS", "is for local mode only; use USERS_TABLE in Lambda")
		}
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.DevUsers = append(c.DevUsers, u)
			}
		}
	}
	if c.VerificationTable != "" && c.UsersTable == "" {
		l.fail("USERS_TABLE", "is required when VERIFICATION_TABLE is set (the user check runs inside the send's DynamoDB transaction)")
	}
	if c.UsersTable != "" && c.VerificationTable == "" {
		l.fail("VERIFICATION_TABLE", "is required when USERS_TABLE is set")
	}
	if v := getenv("CORS_ALLOWED_ORIGINS"); v != "" {
		c.CORSAllowedOrigins = l.list("CORS_ALLOWED_ORIGINS", v, validOrigin)
	}
	if c.Lambda && c.SMSSender == "outbox" {
		l.fail("SMS_SENDER", "outbox is for local mode only: it prints codes")
	}
	if c.Lambda && c.EmailSender == "outbox" {
		l.fail("EMAIL_SENDER", "outbox is for local mode only: it prints codes")
	}
	// Every instance must share the keys (a code sent by one is verified by
	// another, and the JWKS must not change between them): generated
	// per-process keys are for one local process only.
	if c.Lambda && c.KeysSecretARN == "" && (len(c.HMACKey) == 0 || c.SigningKeyPEM == "") {
		l.fail("KEYS_SECRET_ARN", "(or both HMAC_KEY and SIGNING_KEY) is required in Lambda: keys generated per instance would not be shared between instances")
	}
	if c.Lambda && c.VerificationTable == "" {
		l.fail("VERIFICATION_TABLE", "is required in Lambda: the in-memory store would not be shared between instances")
	}
	if c.ChannelOn("email") && c.EmailSender == "smtp" && c.SMTPURL == "" && c.SMTPURLSecretARN == "" {
		l.fail("SMTP_URL", "is required when EMAIL_SENDER=smtp (or SMTP_URL_SECRET_ARN)")
	}
	c.IPv6PrefixBits = l.bounded("IPV6_PREFIX_BITS", 64, 32, 128)
	c.TrustedProxyHops = l.bounded("TRUSTED_PROXY_HOPS", 0, 0, maxProxyHops)
	if host, _, err := net.SplitHostPort(c.Addr); err != nil {
		l.fail("ADDR", "must be host:port")
	} else if !c.Lambda && !loopback(host) {
		// Whatever prints codes or vouches for made-up users must not be
		// reachable from a network: anyone there could read any code at
		// /dev/outbox.
		if pubs := c.codePublishers(); len(pubs) > 0 {
			l.fail("ADDR", "%q is not a loopback address, but %s would hand codes (printed and at /dev/outbox) or made-up users to anyone on the network; listen on 127.0.0.1, [::1] or localhost, or use real senders and USERS_TABLE", c.Addr, strings.Join(pubs, " and "))
		}
	}
	if len(l.problems) > 0 {
		return nil, errors.New("configuration: " + strings.Join(l.problems, "; "))
	}
	return c, nil
}

// maxProxyHops bounds TRUSTED_PROXY_HOPS: no real chain of trusted proxies
// in front of API Gateway is longer.
const maxProxyHops = 5

// codePublishers names the settings that make the local server hand codes
// or made-up users to whoever can reach it.
func (c *Config) codePublishers() []string {
	var out []string
	if c.ChannelOn("sms") && c.SMSSender == "outbox" {
		out = append(out, "SMS_SENDER=outbox")
	}
	if c.ChannelOn("email") && c.EmailSender == "outbox" {
		out = append(out, "EMAIL_SENDER=outbox")
	}
	if len(c.DevUsers) > 0 {
		out = append(out, "DEV_USERS")
	}
	return out
}

// loopback reports whether a listen host is reachable from this machine
// only: "localhost" or a loopback address. An empty host listens on every
// interface.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// LocalOrigins are the browser origins of the local server itself
// (http://ADDR, and http://localhost:PORT when ADDR is a loopback address),
// always allowed by the Origin rule so the local demo page works.
func (c *Config) LocalOrigins() []string {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil || host == "" || c.Lambda {
		return nil
	}
	out := []string{"http://" + net.JoinHostPort(host, port)}
	if loopback(host) && host != "localhost" {
		out = append(out, "http://"+net.JoinHostPort("localhost", port))
	}
	return out
}

// ChannelOn reports whether ch ("sms" or "email") is switched on.
func (c *Config) ChannelOn(ch string) bool { return slices.Contains(c.Channels, ch) }

type loader struct {
	getenv   func(string) string
	problems []string
}

func (l *loader) fail(name, format string, args ...any) {
	l.problems = append(l.problems, name+" "+fmt.Sprintf(format, args...))
}

func (l *loader) str(name, def string) string {
	if v := l.getenv(name); v != "" {
		return v
	}
	return def
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := l.str(name, def)
	if !slices.Contains(allowed, v) {
		l.fail(name, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
	}
	return v
}

func (l *loader) positive(name string, def int) int {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		l.fail(name, "must be a positive integer, got %q", v)
		return def
	}
	return n
}

// MaxLimit bounds the sending limits, thresholds and attempts. The DynamoDB
// store keeps one slot per counted send in an item's update expression and
// refuses caps above 100 at start-up; the same bound for every limit keeps
// both stores, and the template's parameters, in step.
const MaxLimit = 100

// bounded reads an integer in min..max.
func (l *loader) bounded(name string, def, min, max int) int {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		l.fail(name, "must be an integer from %d to %d, got %q", min, max, v)
		return def
	}
	return n
}

// prefixes reads an optional comma-separated list of number prefixes: the
// digits of an E.164 number after the "+", 1 to 15 of them.
func (l *loader) prefixes(name string) []string {
	var out []string
	for _, v := range strings.Split(l.getenv(name), ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "+")
		if v == "" {
			continue
		}
		if len(v) > 15 || strings.Trim(v, "0123456789") != "" {
			l.fail(name, "must be number prefixes (up to 15 digits each, comma-separated), got %q", v)
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func (l *loader) seconds(name string, def int) time.Duration {
	return time.Duration(l.positive(name, def)) * time.Second
}

func (l *loader) list(name, def string, valid func(string) bool) []string {
	var out []string
	for _, v := range strings.Split(l.str(name, def), ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if valid != nil && !valid(v) {
			l.fail(name, "has an unknown value %q", v)
			continue
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		l.fail(name, "must not be empty")
	}
	return out
}

// validOrigin accepts "*", "null" (the Origin of sandboxed frames and
// file:// pages, allowed only when listed) or a browser origin:
// http(s)://host[:port], nothing after it.
func validOrigin(o string) bool {
	if o == "*" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil && u.String() == o
}

// The longest autofill values accepted. With all three lines at these
// lengths every locale's SMS fits two segments, and the zh-CN SMS with a
// 10-character signature and a 20-character domain fits one (the segment
// test in internal/notify counts it); a longer signature or domain would
// silently make every message cost one more segment.
const (
	MaxWebOTPDomainLength = 40
	MaxSMSSignatureLength = 16
	AndroidAppHashLength  = 11
)

// webOTPDomain reads a host name (letters, digits and hyphens in dot-separated
// labels; no scheme, port, path or trailing dot): a browser matches it
// against the page's origin, so anything else would never autofill.
func (l *loader) webOTPDomain(name string) string {
	v := l.getenv(name)
	if v == "" {
		return ""
	}
	if !validHostName(v) || len(v) > MaxWebOTPDomainLength {
		l.fail(name, "must be a host name of at most %d characters such as login.example.com, got %q", MaxWebOTPDomainLength, v)
		return ""
	}
	// Origins carry their host in lower case.
	return strings.ToLower(v)
}

func validHostName(h string) bool {
	labels := strings.Split(h, ".")
	for _, label := range labels {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	// An all-digit last label is an IPv4 address, not a host name.
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil
}

// androidAppHash reads the 11-character hash of an Android app's signing
// key and package, as SMS Retriever computes it.
func (l *loader) androidAppHash(name string) string {
	v := l.getenv(name)
	if v == "" {
		return ""
	}
	ok := len(v) == AndroidAppHashLength
	for _, r := range v {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '/')
	}
	if !ok {
		l.fail(name, "must be %d characters of A-Z, a-z, 0-9, + and /, got %q", AndroidAppHashLength, v)
		return ""
	}
	return v
}

// smsSignature reads the signature put before messages to +86 numbers. It is
// one line of printable text: a line break would move the code off the first
// line.
func (l *loader) smsSignature(name string) string {
	v := l.getenv(name)
	if v == "" {
		return ""
	}
	// Counted in UTF-16 units, as a UCS-2 segment counts them.
	ok := utf8.ValidString(v) && len(utf16.Encode([]rune(v))) <= MaxSMSSignatureLength && strings.TrimSpace(v) == v
	for _, r := range v {
		ok = ok && unicode.IsPrint(r)
	}
	if !ok {
		l.fail(name, "must be at most %d printable characters on one line, such as 【Example】, got %q", MaxSMSSignatureLength, v)
		return ""
	}
	return v
}
