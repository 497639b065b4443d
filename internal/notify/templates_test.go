package notify

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./internal/notify -update` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}

func newTemplates(t *testing.T, def string) *Templates {
	t.Helper()
	tm, err := NewTemplates(def)
	if err != nil {
		t.Fatalf("NewTemplates(%q): %v", def, err)
	}
	return tm
}

func TestRenderGolden(t *testing.T) {
	tm := newTemplates(t, "")
	for _, locale := range Locales() {
		t.Run(locale, func(t *testing.T) {
			sms, err := tm.Render(verification.Message{Channel: verification.SMS, To: "+8613800138000", Code: "123456", TTL: 10 * time.Minute, Locale: locale})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, locale+"/sms.txt", sms.Text)
			if sms.Subject != "" || sms.HTML != "" {
				t.Errorf("SMS content has subject %q, html %q; want only text", sms.Subject, sms.HTML)
			}

			email, err := tm.Render(verification.Message{Channel: verification.Email, To: "user@example.com", Code: "123456", TTL: 10 * time.Minute, Locale: locale})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, locale+"/email_subject.txt", email.Subject)
			golden(t, locale+"/email.txt", email.Text)
			golden(t, locale+"/email.html", email.HTML)
		})
	}
}

func TestLocalesShipped(t *testing.T) {
	got := strings.Join(Locales(), ",")
	if want := "en,zh-CN"; got != want {
		t.Errorf("Locales() = %s, want %s", got, want)
	}
}

func TestRenderLocaleResolution(t *testing.T) {
	tests := []struct {
		name, def, locale, want string
	}{
		{"empty uses default", "", "", "zh-CN"},
		{"exact zh-CN", "en", "zh-CN", "zh-CN"},
		{"exact en", "", "en", "en"},
		{"case and underscore", "en", "ZH_cn", "zh-CN"},
		{"language only", "en", "zh", "zh-CN"},
		{"script and region", "en", "zh-Hans-CN", "zh-CN"},
		{"region variant", "", "en-US", "en"},
		{"upper-case variant", "", "EN-gb", "en"},
		{"unknown falls back", "", "fr-FR", "zh-CN"},
		{"unknown falls back to configured default", "en", "de", "en"},
		{"blank falls back", "en", "  ", "en"},
		{"default given by language", "en-US", "", "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := newTemplates(t, tt.def)
			if got := tm.Locale(tt.locale); got != tt.want {
				t.Errorf("Locale(%q) with default %q = %q, want %q", tt.locale, tt.def, got, tt.want)
			}
			// Render must agree with Locale: compare with a render in the
			// wanted locale.
			m := verification.Message{Channel: verification.SMS, Code: "654321", TTL: time.Minute, Locale: tt.locale}
			got, err := tm.Render(m)
			if err != nil {
				t.Fatal(err)
			}
			m.Locale = tt.want
			want, _ := tm.Render(m)
			if got.Text != want.Text {
				t.Errorf("Render in %q: got %q, want %q", tt.locale, got.Text, want.Text)
			}
		})
	}
}

func TestValidLocale(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"zh-CN", true}, {"en", true}, {"en-US", true}, {"zh", true}, {"zh-Hans-CN", true}, {"en_GB", true},
		{"", false}, {"fr", false}, {"english", false}, {"-", false},
	}
	for _, tt := range tests {
		if got := ValidLocale(tt.in); got != tt.want {
			t.Errorf("ValidLocale(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if _, err := NewTemplates("fr"); err == nil {
		t.Error("NewTemplates(fr): got nil error, want unknown locale")
	}
}

func TestMinutes(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want int
	}{
		{600 * time.Second, 10}, {601 * time.Second, 11}, {60 * time.Second, 1}, {61 * time.Second, 2},
		{time.Second, 1}, {0, 1}, {299 * time.Second, 5},
	}
	for _, tt := range tests {
		if got := Minutes(tt.ttl); got != tt.want {
			t.Errorf("Minutes(%v) = %d, want %d", tt.ttl, got, tt.want)
		}
	}
}

func TestRenderDetails(t *testing.T) {
	tm := newTemplates(t, "")
	tests := []struct {
		name      string
		m         verification.Message
		field     func(Content) string
		contains  string
		forbidden string
	}{
		{"en singular minute", verification.Message{Channel: verification.SMS, Code: "1", TTL: 2 * time.Second, Locale: "en"},
			func(c Content) string { return c.Text }, "valid for 1 min.", "1 minutes"},
		{"en plural minutes", verification.Message{Channel: verification.Email, Code: "1", TTL: 90 * time.Second, Locale: "en"},
			func(c Content) string { return c.Text }, "valid for 2 minutes", ""},
		{"zh minutes from TTL", verification.Message{Channel: verification.SMS, Code: "1", TTL: 300 * time.Second},
			func(c Content) string { return c.Text }, "5 分钟内有效", ""},
		{"html escapes", verification.Message{Channel: verification.Email, Code: "<b>1</b>", TTL: time.Minute, Locale: "en"},
			func(c Content) string { return c.HTML }, "&lt;b&gt;1&lt;/b&gt;", "<b>1</b>"},
		{"html lang", verification.Message{Channel: verification.Email, Code: "1", TTL: time.Minute, Locale: "zh"},
			func(c Content) string { return c.HTML }, `<html lang="zh-CN">`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tm.Render(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got := tt.field(c)
			if !strings.Contains(got, tt.contains) {
				t.Errorf("got %q, want it to contain %q", got, tt.contains)
			}
			if tt.forbidden != "" && strings.Contains(got, tt.forbidden) {
				t.Errorf("got %q, want it not to contain %q", got, tt.forbidden)
			}
		})
	}

	if _, err := tm.Render(verification.Message{Channel: "pigeon", Code: "1"}); err == nil {
		t.Error("Render(channel pigeon): got nil error, want unknown channel")
	}
}

// TestRenderFromPartsIsExecution: a message put together from the parts
// rendered once is the message the templates render for it, in every
// locale, channel and validity, autofill lines included.
func TestRenderFromPartsIsExecution(t *testing.T) {
	tm := newTemplates(t, "").WithAutofill(Autofill{WebOTPDomain: "example.com", SMSSignature: "【Example】"})
	for _, locale := range Locales() {
		for _, minutes := range []int{1, 2, 5, 10, 60} {
			for _, ch := range []verification.Channel{verification.SMS, verification.Email} {
				for _, code := range []string{"000000", "123456", "9081726354", "42"} {
					m := verification.Message{Channel: ch, To: "+8613800138000", Code: code, TTL: time.Duration(minutes) * time.Minute, Locale: locale}
					got, err := tm.Render(m)
					if err != nil {
						t.Fatal(err)
					}
					want, err := tm.sets[locale].execute(ch, templateData{Code: code, Minutes: minutes})
					if err != nil {
						t.Fatal(err)
					}
					if ch == verification.SMS {
						want.Text = tm.autofill.apply(want.Text, m)
					}
					if got != want {
						t.Errorf("%s %s, %d min, code %s: got %+v, want %+v", locale, ch, minutes, code, got, want)
					}
				}
			}
			if p := tm.parts(locale, minutes); len(p) != 2 {
				t.Errorf("%s, %d min: %d channels rendered once, want both", locale, minutes, len(p))
			}
		}
	}
}

// TestRenderTemplateThatChangesTheCode: a template that does not render the
// code as given (spaced digits, or the stand-in's digits in its own text)
// is executed for each message, so its messages stay right.
func TestRenderTemplateThatChangesTheCode(t *testing.T) {
	tests := []struct {
		name, src, code, want string
	}{
		{"spaced digits", `{{printf "%.3s %s" .Code (slice .Code 3)}}`, "123456", "123 456"},
		{"the stand-in in its text", `Code {{.Code}}, not ` + standIn, "123456", "Code 123456, not " + standIn},
		{"verbatim", `Code {{.Code}}`, "123456", "Code 123456"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := newTemplates(t, "en")
			set := *tm.sets["en"]
			set.sms = texttemplate.Must(texttemplate.New(smsFile).Parse(tt.src))
			tm.sets["en"] = &set
			c, err := tm.Render(verification.Message{Channel: verification.SMS, Code: tt.code, TTL: time.Minute, Locale: "en"})
			if err != nil {
				t.Fatal(err)
			}
			if c.Text != tt.want {
				t.Errorf("got %q, want %q", c.Text, tt.want)
			}
			_, split := tm.parts("en", 1)[verification.SMS]
			if wantSplit := tt.name == "verbatim"; split != wantSplit {
				t.Errorf("rendered once: %v, want %v", split, wantSplit)
			}
		})
	}
}
