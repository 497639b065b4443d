package notify

import (
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/verification"
)

// gsm7Basic and gsm7Extension are the GSM 03.38 default alphabet and its
// extension table (3GPP TS 23.038). An extension character is sent as an
// escape plus itself: two septets.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

// smsSegments counts the segments a carrier bills for text: one segment is
// 160 GSM-7 septets or, when any character is outside GSM-7, 70 UTF-16
// units; a longer message is split into parts of 153 septets or 67 units
// (the rest carries the concatenation header). A two-unit character (an
// escape pair, a surrogate pair) is never split across parts.
func smsSegments(text string) (segments int, ucs2 bool) {
	var units []int // the size of each character in its encoding's units
	for _, r := range text {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			units = append(units, 1)
		case strings.ContainsRune(gsm7Extension, r):
			units = append(units, 2)
		default:
			ucs2 = true
		}
	}
	single, part := 160, 153
	if ucs2 {
		single, part = 70, 67
		units = units[:0]
		for _, r := range text {
			units = append(units, utf16.RuneLen(r))
		}
	}
	total := 0
	for _, u := range units {
		total += u
	}
	if total <= single {
		return 1, ucs2
	}
	segments, used := 1, 0
	for _, u := range units {
		if used+u > part {
			segments, used = segments+1, 0
		}
		used += u
	}
	return segments, ucs2
}

func TestSMSSegmentsCounter(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
		ucs2 bool
	}{
		{"160 septets", strings.Repeat("a", 160), 1, false},
		{"161 septets", strings.Repeat("a", 161), 2, false},
		{"extension counts two", strings.Repeat("a", 159) + "€", 2, false},
		{"306 septets", strings.Repeat("a", 306), 2, false},
		{"307 septets", strings.Repeat("a", 307), 3, false},
		{"escape pair not split", strings.Repeat("a", 152) + "{" + strings.Repeat("a", 152), 3, false},
		{"70 units", strings.Repeat("中", 70), 1, true},
		{"71 units", strings.Repeat("中", 71), 2, true},
		{"134 units", strings.Repeat("中", 134), 2, true},
		{"135 units", strings.Repeat("中", 135), 3, true},
		{"one non-GSM character makes it all UCS-2", strings.Repeat("a", 70) + "【", 2, true},
		{"newline is GSM-7", "a\nb", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ucs2 := smsSegments(tt.text)
			if got != tt.want || ucs2 != tt.ucs2 {
				t.Errorf("got %d segments (ucs2 %v), want %d (ucs2 %v)", got, ucs2, tt.want, tt.ucs2)
			}
		})
	}
}

// The autofill values at the lengths the segment promises are made for.
var (
	signature10 = "【" + strings.Repeat("示", 8) + "】"
	domain20    = "login.example-app.cn"
	// The longest values configuration accepts.
	signatureMax = "【" + strings.Repeat("示", config.MaxSMSSignatureLength-2) + "】"
	domainMax    = strings.Repeat("a", config.MaxWebOTPDomainLength-4) + ".com"
	hash         = "FA+9qCX9/Su"
)

// TestSMSSegments renders every locale's SMS and counts its segments: the
// zh-CN SMS to a +86 number with a 10-character signature and the WebOTP
// line of a 20-character domain fits one segment; every locale's SMS with
// all three lines at their longest fits two. Validities up to 99 minutes
// are covered (the code's own digits never change length).
func TestSMSSegments(t *testing.T) {
	if n := len(utf16.Encode([]rune(signature10))); n != 10 {
		t.Fatalf("signature10 has %d units", n)
	}
	if len(domain20) != 20 || len(hash) != config.AndroidAppHashLength {
		t.Fatalf("domain20 %d, hash %d characters", len(domain20), len(hash))
	}
	for _, v := range []struct{ name, value string }{
		{"SMS_SIGNATURE", signatureMax}, {"WEBOTP_DOMAIN", domainMax}, {"ANDROID_APP_HASH", hash},
	} {
		// The longest values must be ones configuration accepts, or this
		// test would prove nothing about real deployments.
		if _, err := config.Load(func(k string) string {
			if k == v.name {
				return v.value
			}
			return ""
		}, config.Checks{}); err != nil {
			t.Fatalf("%s=%q refused: %v", v.name, v.value, err)
		}
	}

	tests := []struct {
		name     string
		locales  []string
		autofill Autofill
		to       string
		want     int
	}{
		{"zh-CN, signature 10, WebOTP domain 20", []string{"zh-CN"},
			Autofill{SMSSignature: signature10, WebOTPDomain: domain20}, "+8613800138000", 1},
		{"every locale to +86, all three at their longest", Locales(),
			Autofill{SMSSignature: signatureMax, AndroidAppHash: hash, WebOTPDomain: domainMax}, "+8613800138000", 2},
		{"every locale elsewhere, all three at their longest", Locales(),
			Autofill{SMSSignature: signatureMax, AndroidAppHash: hash, WebOTPDomain: domainMax}, "+85251234567", 2},
		{"every locale without autofill", Locales(), Autofill{}, "+8613800138000", 1},
	}
	base := newTemplates(t, "")
	for _, tt := range tests {
		tm := base.WithAutofill(tt.autofill)
		for _, locale := range tt.locales {
			for _, minutes := range []int{1, 10, 99} {
				m := verification.Message{Channel: verification.SMS, To: tt.to, Code: "123456", TTL: time.Duration(minutes) * time.Minute, Locale: locale}
				c, err := tm.Render(m)
				if err != nil {
					t.Fatal(err)
				}
				got, ucs2 := smsSegments(c.Text)
				if got > tt.want {
					t.Errorf("%s, %s, %d min: %d segments (ucs2 %v), want at most %d:\n%s", tt.name, locale, minutes, got, ucs2, tt.want, c.Text)
				}
			}
		}
	}
}

func TestAutofillLines(t *testing.T) {
	tm := newTemplates(t, "").WithAutofill(Autofill{SMSSignature: "【Example】", AndroidAppHash: hash, WebOTPDomain: "login.example.com"})
	for _, locale := range Locales() {
		t.Run(locale, func(t *testing.T) {
			m := verification.Message{Channel: verification.SMS, To: "+8613800138000", Code: "654321", TTL: 10 * time.Minute, Locale: locale}
			c, err := tm.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(c.Text, "\n")
			if len(lines) != 3 {
				t.Fatalf("got %d lines, want 3:\n%s", len(lines), c.Text)
			}
			if !strings.HasPrefix(lines[0], "【Example】") || !strings.Contains(lines[0], "654321") {
				t.Errorf("first line %q: want the signature, then the code for a person", lines[0])
			}
			if lines[1] != hash {
				t.Errorf("second line %q, want the app hash %q", lines[1], hash)
			}
			if want := "@login.example.com #654321"; lines[2] != want {
				t.Errorf("last line %q, want %q", lines[2], want)
			}

			// Elsewhere, no signature: its brackets would force UCS-2.
			m.To = "+85251234567"
			c, err = tm.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(c.Text, "Example】") {
				t.Errorf("message to %s carries the signature:\n%s", m.To, c.Text)
			}
			if !strings.HasSuffix(c.Text, "\n"+hash+"\n@login.example.com #654321") {
				t.Errorf("message to %s lacks the autofill lines:\n%s", m.To, c.Text)
			}
		})
	}

	// Email is not touched.
	c, err := tm.Render(verification.Message{Channel: verification.Email, To: "user@example.com", Code: "654321", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.Text, "@login.example.com") || strings.Contains(c.Subject, "Example】") {
		t.Errorf("email carries SMS autofill lines: %+v", c)
	}
}

// TestRenderGoldenAutofill keeps the message a phone receives with all three
// lines set (the one the README shows) under a golden file.
func TestRenderGoldenAutofill(t *testing.T) {
	tm := newTemplates(t, "").WithAutofill(Autofill{SMSSignature: "【Example】", AndroidAppHash: hash, WebOTPDomain: "login.example.com"})
	for _, locale := range Locales() {
		c, err := tm.Render(verification.Message{Channel: verification.SMS, To: "+8613800138000", Code: "123456", TTL: 10 * time.Minute, Locale: locale})
		if err != nil {
			t.Fatal(err)
		}
		golden(t, locale+"/sms_autofill.txt", c.Text)
	}
}
