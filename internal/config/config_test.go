package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/config"
)

var checks = config.Checks{
	Region: func(r string) bool { return r == "CN" || r == "HK" },
	Locale: func(l string) bool { return l == "zh-CN" || l == "en" },
}

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
		c.Addr != "127.0.0.1:3000" || strings.Join(c.Channels, ",") != "sms,email" || strings.Join(c.AllowedPhoneRegions, ",") != "CN" {
		t.Fatalf("defaults %+v", c)
	}
	lambda, err := load(map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u"})
	if err != nil {
		t.Fatal(err)
	}
	if !lambda.Lambda || lambda.SMSSender != "sns" || lambda.EmailSender != "ses" {
		t.Fatalf("lambda defaults %+v", lambda)
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
		{map[string]string{"ADDR": "3000"}, "ADDR"},
		{map[string]string{"CAPTCHA_LENGTH": "3"}, "CAPTCHA_LENGTH"},
		{map[string]string{"CAPTCHA_LENGTH": "7"}, "CAPTCHA_LENGTH"},
		{map[string]string{"CAPTCHA_LENGTH": "four"}, "CAPTCHA_LENGTH"},
		{map[string]string{"CAPTCHA_LENGTH": "4"}, ""},
		{map[string]string{"CAPTCHA_LENGTH": "6"}, ""},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com/login"}, "CORS_ALLOWED_ORIGINS"},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "app.example.com"}, "CORS_ALLOWED_ORIGINS"},
		{map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example,http://localhost:5173,*"}, ""},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "x", "VERIFICATION_TABLE": "v", "USERS_TABLE": "u", "SMS_SENDER": "outbox"}, "SMS_SENDER"},
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
