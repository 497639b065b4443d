package app_test

import (
	"strings"
	"testing"

	"github.com/verifykit/verifykit/internal/apptest"
)

// TestAutofillSettingsReachTheSMS: the three settings are wired from the
// environment to the message a phone receives.
func TestAutofillSettingsReachTheSMS(t *testing.T) {
	s := apptest.New(t, map[string]string{
		"WEBOTP_DOMAIN": "login.example.com", "ANDROID_APP_HASH": "FA+9qCX9/Su", "SMS_SIGNATURE": "【Example】",
	})
	if st, _, b := s.Do(t, "POST", sendPath, "198.51.100.60", `{"target":"ANY","phone_number":"+86 13800138000"}`, nil); st != 200 {
		t.Fatalf("send: %d %v", st, b)
	}
	msgs := s.Outbox.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if !strings.HasPrefix(m.Text, "【Example】") || !strings.HasSuffix(m.Text, "\nFA+9qCX9/Su\n@login.example.com #"+m.Code) {
		t.Errorf("SMS text %q: want the signature first and the hash and WebOTP lines last", m.Text)
	}
}
