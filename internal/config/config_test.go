package config_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/config"
)

var checks = config.Checks{
	Region: func(r string) bool { return r == "CN" || r == "HK" },
	Locale: func(l string) bool { return l == "zh-CN" || l == "en" },
}

const hmacKey = "dGVzdC1obWFjLWtleS10ZXN0LWhtYWMta2V5LXRlc3QtaG1hYw=="

func load(env map[string]string) (*config.Config, error) {
	return config.Load(func(k string) string { return env[k] }, checks)
}

func TestDefaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Lambda || c.VerificationTable != "" || c.SMSSender != "outbox" || c.EmailSender != "outbox" ||
		c.CodeTTL != 600*time.Second || c.ResendCooldown != time.Minute || c.IPHourlyLimit != 10 ||
		c.TargetDailyLimit != 10 || c.CaptchaIPThreshold != 3 || c.CaptchaTargetThreshold != 3 ||
		c.MaxVerifyAttempts != 5 || c.CaptchaTTL != 300*time.Second || c.CaptchaLength != 5 || c.DefaultLocale != "zh-CN" ||
		c.Addr != "127.0.0.1:3000" || strings.Join(c.Channels, ",") != "sms,email" || strings.Join(c.AllowedPhoneRegions, ",") != "CN" ||
		c.SMSHourlyBudget != 1000 || c.SMSPrefixLength != 7 || c.PumpingUnverifiedLimit != 20 ||
		c.SMSPrefixAllow != nil || c.SMSPrefixBlock != nil || c.SMSMaxPrice != "" {
		t.Fatalf("defaults %+v", c)
	}
	if c.KeysRefresh != 300*time.Second {
		t.Fatalf("KEYS_REFRESH_SECONDS default %v, want 5m", c.KeysRefresh)
	}
	lambda, err := load(map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k"})
	if err != nil {
		t.Fatal(err)
	}
	if !lambda.Lambda || lambda.SMSSender != "sns" || lambda.EmailSender != "ses" {
		t.Fatalf("lambda defaults %+v", lambda)
	}
}

func TestAbuseLimits(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.VerifyIPHourlyLimit != 60 || c.CaptchaIPHourlyLimit != 30 || c.CaptchaMaxAttempts != 3 || c.CaptchaTokenUses != 5 {
		t.Fatalf("defaults: verify %d, captcha images %d, captcha attempts %d, token uses %d; want 60, 30, 3, 5",
			c.VerifyIPHourlyLimit, c.CaptchaIPHourlyLimit, c.CaptchaMaxAttempts, c.CaptchaTokenUses)
	}
	for _, v := range []string{"1", "100"} {
		c, err := load(map[string]string{"VERIFY_IP_HOURLY_LIMIT": v, "CAPTCHA_IP_HOURLY_LIMIT": v, "CAPTCHA_MAX_ATTEMPTS": v, "CAPTCHA_TOKEN_USES": v})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if got := []int{c.VerifyIPHourlyLimit, c.CaptchaIPHourlyLimit, c.CaptchaMaxAttempts, c.CaptchaTokenUses}; fmt.Sprint(got) != fmt.Sprintf("[%s %s %s %s]", v, v, v, v) {
			t.Errorf("%s: got %v", v, got)
		}
	}
}

func TestSmallValuesAreValid(t *testing.T) {
	c, err := load(map[string]string{"CODE_TTL_SECONDS": "1", "RESEND_COOLDOWN_SECONDS": "2", "IP_HOURLY_LIMIT": "1", "TARGET_DAILY_LIMIT": "3", "CAPTCHA_IP_THRESHOLD": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.CodeTTL != time.Second || c.CaptchaIPThreshold != 0 {
		t.Fatalf("%+v", c)
	}
}

func TestPrefixLists(t *testing.T) {
	c, err := load(map[string]string{"SMS_PREFIX_ALLOW": " 86138, +8613 ,,86138", "SMS_PREFIX_BLOCK": "2347"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.SMSPrefixAllow, ","); got != "86138,8613" {
		t.Errorf("SMS_PREFIX_ALLOW read as %q, want 86138,8613", got)
	}
	if got := strings.Join(c.SMSPrefixBlock, ","); got != "2347" {
		t.Errorf("SMS_PREFIX_BLOCK read as %q, want 2347", got)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{"CODE_TTL_SECONDS": "0"}, "CODE_TTL_SECONDS"},
		{map[string]string{"CODE_TTL_SECONDS": "ten"}, "CODE_TTL_SECONDS"},
		{map[string]string{"RESEND_COOLDOWN_SECONDS": "-1"}, "RESEND_COOLDOWN_SECONDS"},
		{map[string]string{"IP_HOURLY_LIMIT": "1.5"}, "IP_HOURLY_LIMIT"},
		{map[string]string{"TARGET_DAILY_LIMIT": ""}, ""},
		{map[string]string{"CAPTCHA_TARGET_THRESHOLD": "-1"}, "CAPTCHA_TARGET_THRESHOLD"},
		{map[string]string{"MAX_VERIFY_ATTEMPTS": "0"}, "MAX_VERIFY_ATTEMPTS"},
		{map[string]string{"VERIFY_IP_HOURLY_LIMIT": "0"}, "VERIFY_IP_HOURLY_LIMIT"},
		{map[string]string{"VERIFY_IP_HOURLY_LIMIT": "101"}, "VERIFY_IP_HOURLY_LIMIT"},
		{map[string]string{"CAPTCHA_IP_HOURLY_LIMIT": "0"}, "CAPTCHA_IP_HOURLY_LIMIT"},
		{map[string]string{"CAPTCHA_IP_HOURLY_LIMIT": "101"}, "CAPTCHA_IP_HOURLY_LIMIT"},
		{map[string]string{"CAPTCHA_MAX_ATTEMPTS": "0"}, "CAPTCHA_MAX_ATTEMPTS"},
		{map[string]string{"CAPTCHA_MAX_ATTEMPTS": "three"}, "CAPTCHA_MAX_ATTEMPTS"},
		{map[string]string{"CAPTCHA_TOKEN_USES": "0"}, "CAPTCHA_TOKEN_USES"},
		{map[string]string{"CAPTCHA_TOKEN_USES": "101"}, "CAPTCHA_TOKEN_USES"},
		{map[string]string{"ALLOWED_PHONE_REGIONS": "CN,XX"}, "ALLOWED_PHONE_REGIONS"},
		{map[string]string{"DEFAULT_LOCALE": "fr"}, "DEFAULT_LOCALE"},
		{map[string]string{"CHANNELS": "sms,fax"}, "CHANNELS"},
		{map[string]string{"CHANNELS": ","}, "CHANNELS"},
		{map[string]string{"SMS_SENDER": "carrier-pigeon"}, "SMS_SENDER"},
		{map[string]string{"EMAIL_SENDER": "smtp"}, "SMTP_URL"},
		{map[string]string{"HMAC_KEY": "c2hvcnQ="}, "HMAC_KEY"},
		{map[string]string{"VERIFICATION_TABLE": "v"}, "USERS_TABLE"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x"}, "VERIFICATION_TABLE"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "DEV_USERS": "a@b.c"}, "DEV_USERS"},
		// In Lambda, keys no other instance shares are a start-up error.
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u"}, "KEYS_SECRET_ARN"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "HMAC_KEY": hmacKey}, "SIGNING_KEY"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "SIGNING_KEY": "pem"}, "HMAC_KEY"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "HMAC_KEY": hmacKey, "SIGNING_KEY": "pem"}, ""},
		{map[string]string{"HMAC_KEY": hmacKey}, ""}, // locally, the missing key is generated
		{map[string]string{"KEYS_REFRESH_SECONDS": "0"}, "KEYS_REFRESH_SECONDS"},
		// Limits stop at what the DynamoDB store can hold (MaxLimit).
		{map[string]string{"IP_HOURLY_LIMIT": "100", "TARGET_DAILY_LIMIT": "100", "CAPTCHA_IP_THRESHOLD": "100", "CAPTCHA_TARGET_THRESHOLD": "100", "MAX_VERIFY_ATTEMPTS": "100"}, ""},
		{map[string]string{"IP_HOURLY_LIMIT": "101"}, "IP_HOURLY_LIMIT"},
		{map[string]string{"TARGET_DAILY_LIMIT": "101"}, "TARGET_DAILY_LIMIT"},
		{map[string]string{"CAPTCHA_IP_THRESHOLD": "101"}, "CAPTCHA_IP_THRESHOLD"},
		{map[string]string{"MAX_VERIFY_ATTEMPTS": "101"}, "MAX_VERIFY_ATTEMPTS"},
		{map[string]string{"ADDR": "3000"}, "ADDR"},
		{map[string]string{"CAPTCHA_LENGTH": "3"}, "CAPTCHA_LENGTH"},
		{map[string]string{"CAPTCHA_LENGTH": "7"}, "CAPTCHA_LENGTH"},
		{map[string]string{"CAPTCHA_LENGTH": "four"}, "CAPTCHA_LENGTH"},
		{map[string]string{"CAPTCHA_LENGTH": "4"}, ""},
		{map[string]string{"CAPTCHA_LENGTH": "6"}, ""},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com/login"}, "CORS_ALLOWED_ORIGINS"},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "app.example.com"}, "CORS_ALLOWED_ORIGINS"},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example,http://localhost:5173,*"}, ""},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "null"}, ""},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "NULL"}, "CORS_ALLOWED_ORIGINS"},
		{map[string]string{"IPV6_PREFIX_BITS": "31"}, "IPV6_PREFIX_BITS"},
		{map[string]string{"IPV6_PREFIX_BITS": "129"}, "IPV6_PREFIX_BITS"},
		{map[string]string{"IPV6_PREFIX_BITS": "/64"}, "IPV6_PREFIX_BITS"},
		{map[string]string{"IPV6_PREFIX_BITS": "32"}, ""},
		{map[string]string{"IPV6_PREFIX_BITS": "128"}, ""},
		{map[string]string{"TRUSTED_PROXY_HOPS": "-1"}, "TRUSTED_PROXY_HOPS"},
		{map[string]string{"TRUSTED_PROXY_HOPS": "6"}, "TRUSTED_PROXY_HOPS"},
		{map[string]string{"TRUSTED_PROXY_HOPS": "one"}, "TRUSTED_PROXY_HOPS"},
		{map[string]string{"TRUSTED_PROXY_HOPS": "2"}, ""},
		{map[string]string{"WEBOTP_DOMAIN": "https://login.example.com"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": "login.example.com:443"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": "login.example.com."}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": "-login.example.com"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": "log_in.example.com"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": "192.0.2.1"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": "login example.com"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": strings.Repeat("a", 37) + ".com"}, "WEBOTP_DOMAIN"},
		{map[string]string{"WEBOTP_DOMAIN": strings.Repeat("a", 36) + ".com"}, ""},
		{map[string]string{"WEBOTP_DOMAIN": "localhost"}, ""},
		{map[string]string{"ANDROID_APP_HASH": "FA+9qCX9VS"}, "ANDROID_APP_HASH"},
		{map[string]string{"ANDROID_APP_HASH": "FA+9qCX9VSuu"}, "ANDROID_APP_HASH"},
		{map[string]string{"ANDROID_APP_HASH": "FA+9qCX9VS="}, "ANDROID_APP_HASH"},
		{map[string]string{"ANDROID_APP_HASH": "FA+9qCX9/Su"}, ""},
		{map[string]string{"SMS_SIGNATURE": "【" + strings.Repeat("示", 15) + "】"}, "SMS_SIGNATURE"},
		{map[string]string{"SMS_SIGNATURE": "【" + strings.Repeat("示", 14) + "】"}, ""},
		{map[string]string{"SMS_SIGNATURE": "【Example】\n"}, "SMS_SIGNATURE"},
		{map[string]string{"SMS_SIGNATURE": " 【Example】"}, "SMS_SIGNATURE"},
		{map[string]string{"SMS_SIGNATURE": "【Ex\x00】"}, "SMS_SIGNATURE"},
		{map[string]string{"SMS_SIGNATURE": "\xff"}, "SMS_SIGNATURE"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "SMS_SENDER": "outbox"}, "SMS_SENDER"},
		{map[string]string{"SMS_HOURLY_BUDGET": "-1"}, "SMS_HOURLY_BUDGET"},
		{map[string]string{"SMS_HOURLY_BUDGET": "1000001"}, "SMS_HOURLY_BUDGET"},
		{map[string]string{"SMS_HOURLY_BUDGET": "0", "PUMPING_UNVERIFIED_LIMIT": "0"}, ""},
		{map[string]string{"SMS_PREFIX_LENGTH": "0"}, "SMS_PREFIX_LENGTH"},
		{map[string]string{"SMS_PREFIX_LENGTH": "16"}, "SMS_PREFIX_LENGTH"},
		{map[string]string{"PUMPING_UNVERIFIED_LIMIT": "x"}, "PUMPING_UNVERIFIED_LIMIT"},
		{map[string]string{"SMS_PREFIX_ALLOW": "86138,+8613"}, ""},
		{map[string]string{"SMS_PREFIX_ALLOW": "86-138"}, "SMS_PREFIX_ALLOW"},
		{map[string]string{"SMS_PREFIX_BLOCK": "2347,abc"}, "SMS_PREFIX_BLOCK"},
		{map[string]string{"SMS_PREFIX_BLOCK": "1234567890123456"}, "SMS_PREFIX_BLOCK"},
		{map[string]string{"SMS_MAX_PRICE": "0.05"}, ""},
		{map[string]string{"SMS_MAX_PRICE": "0"}, "SMS_MAX_PRICE"},
		{map[string]string{"SMS_MAX_PRICE": "1e-2"}, "SMS_MAX_PRICE"},
		{map[string]string{"SMS_MAX_PRICE": "$0.05"}, "SMS_MAX_PRICE"},
		{map[string]string{"SMS_MAX_PRICE": "NaN"}, "SMS_MAX_PRICE"},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "EMAIL_SENDER": "outbox"}, "EMAIL_SENDER"},
	}
	for _, tt := range tests {
		_, err := load(tt.env)
		if tt.name == "" {
			if err != nil {
				t.Errorf("%v: %v", tt.env, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%v: got %v, want an error naming %s", tt.env, err, tt.name)
		}
	}
	// All problems at once.
	_, err := load(map[string]string{"CODE_TTL_SECONDS": "x", "MAX_VERIFY_ATTEMPTS": "y"})
	if err == nil || !strings.Contains(err.Error(), "CODE_TTL_SECONDS") || !strings.Contains(err.Error(), "MAX_VERIFY_ATTEMPTS") {
		t.Fatalf("got %v, want both variables named", err)
	}
}

func TestProxyAndIPv6Defaults(t *testing.T) {
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.IPv6PrefixBits != 64 || c.TrustedProxyHops != 0 {
		t.Fatalf("IPv6PrefixBits %d TrustedProxyHops %d, want 64 and 0", c.IPv6PrefixBits, c.TrustedProxyHops)
	}
}

// TestLocalServerStaysOnLoopback: whatever hands out codes or made-up users
// (an outbox sender, /dev/outbox, DEV_USERS) must not listen on a network.
func TestLocalServerStaysOnLoopback(t *testing.T) {
	real := map[string]string{"SMS_SENDER": "sns", "EMAIL_SENDER": "ses"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string // words the error must hold; nil: start-up succeeds
	}{
		{"default", nil, nil},
		{"loopback IPv4", with(nil, "ADDR", "127.0.0.1:8080"), nil},
		{"loopback IPv4, other address", with(nil, "ADDR", "127.0.0.2:8080"), nil},
		{"loopback IPv6", with(nil, "ADDR", "[::1]:8080"), nil},
		{"localhost", with(nil, "ADDR", "localhost:8080"), nil},
		{"all interfaces, outbox", with(nil, "ADDR", ":3000"), []string{"ADDR", `":3000"`, "SMS_SENDER=outbox", "EMAIL_SENDER=outbox"}},
		{"0.0.0.0, outbox", with(nil, "ADDR", "0.0.0.0:3000"), []string{"ADDR", "0.0.0.0:3000", "SMS_SENDER=outbox"}},
		{"LAN address, email outbox only", with(nil, "ADDR", "192.168.1.5:3000", "CHANNELS", "email"), []string{"ADDR", "192.168.1.5:3000", "EMAIL_SENDER=outbox"}},
		{"host name, outbox", with(nil, "ADDR", "myhost.example:3000"), []string{"ADDR", "myhost.example:3000", "SMS_SENDER=outbox"}},
		{"[::], outbox", with(nil, "ADDR", "[::]:3000"), []string{"ADDR", "SMS_SENDER=outbox"}},
		{"real senders, DEV_USERS", with(real, "ADDR", "0.0.0.0:3000", "DEV_USERS", "a@b.c"), []string{"ADDR", "0.0.0.0:3000", "DEV_USERS"}},
		{"real senders", with(real, "ADDR", "0.0.0.0:3000"), nil},
		{"outbox channel switched off", with(nil, "ADDR", "0.0.0.0:3000", "CHANNELS", "sms", "SMS_SENDER", "sns"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.env)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want start-up", err)
				}
				return
			}
			if err == nil {
				t.Fatal("started; want a refusal")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
}

func TestLocalOrigins(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{nil, "http://127.0.0.1:3000 http://localhost:3000"},
		{map[string]string{"ADDR": "[::1]:8080"}, "http://[::1]:8080 http://localhost:8080"},
		{map[string]string{"ADDR": "localhost:8080"}, "http://localhost:8080"},
		{map[string]string{"ADDR": "0.0.0.0:8080", "SMS_SENDER": "sns", "EMAIL_SENDER": "ses"}, "http://0.0.0.0:8080"},
		{map[string]string{"ADDR": ":8080", "SMS_SENDER": "sns", "EMAIL_SENDER": "ses"}, ""},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys"}, ""},
	}
	for _, tt := range tests {
		c, err := load(tt.env)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.LocalOrigins(), " "); got != tt.want {
			t.Errorf("%v: LocalOrigins %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestAutofillSettings(t *testing.T) {
	c, err := load(map[string]string{"WEBOTP_DOMAIN": "Login.Example.com", "ANDROID_APP_HASH": "FA+9qCX9/Su", "SMS_SIGNATURE": "【Example】"})
	if err != nil {
		t.Fatal(err)
	}
	// Origins carry their host in lower case; the WebOTP line must match.
	if c.WebOTPDomain != "login.example.com" || c.AndroidAppHash != "FA+9qCX9/Su" || c.SMSSignature != "【Example】" {
		t.Errorf("got %q, %q, %q", c.WebOTPDomain, c.AndroidAppHash, c.SMSSignature)
	}
	c, err = load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.WebOTPDomain != "" || c.AndroidAppHash != "" || c.SMSSignature != "" {
		t.Errorf("defaults: got %q, %q, %q, want all empty", c.WebOTPDomain, c.AndroidAppHash, c.SMSSignature)
	}
}
