// Package notify delivers verification codes: SMS through Amazon SNS, email
// through Amazon SES v2 or any SMTP server, and, in local mode, an in-memory
// outbox that prints each message. Every sender renders its text from the
// embedded per-locale templates and implements verification.Sender.
package notify

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// DefaultLocale is the message language when neither the configuration nor
// the request names one that is shipped.
const DefaultLocale = "zh-CN"

// The templates live in one directory per locale, each with these four files.
// Adding a language is adding a directory: NewTemplates refuses an incomplete one.
//
//go:embed templates
var templateFS embed.FS

const (
	smsFile          = "sms.txt"
	emailSubjectFile = "email_subject.txt"
	emailTextFile    = "email.txt"
	emailHTMLFile    = "email.html"
)

// Content is a rendered message: Text alone for SMS; Subject, Text and HTML
// for email.
type Content struct {
	Subject string
	Text    string
	HTML    string
}

// Templates renders messages in the shipped locales. It is immutable after
// NewTemplates and safe for concurrent use.
type Templates struct {
	defaultLocale string
	names         []string
	sets          map[string]*localeSet
	autofill      Autofill
	// rendered keeps each locale's messages rendered for a validity, split
	// where the code goes (see parts). Shared by the copies WithAutofill
	// makes: the autofill lines are added after.
	rendered *sync.Map
}

// Autofill holds the optional SMS lines that let a phone read the code out of
// the message by itself. Configuration validates them (internal/config): their
// lengths are bounded so that every locale's SMS stays within the segments the
// README promises.
type Autofill struct {
	// WebOTPDomain, when set, makes "@<domain> #<code>" the last line: the
	// origin-bound one-time-code format that Chrome's WebOTP API and Safari's
	// one-time-code AutoFill read, for a page served from that host.
	WebOTPDomain string
	// AndroidAppHash, when set, stands on its own line before the WebOTP line:
	// Android's SMS Retriever hands the message to the app with that hash.
	AndroidAppHash string
	// SMSSignature, when set, prefixes messages to +86 numbers only: mainland
	// China requires a registered signature such as 【Example】, and elsewhere
	// its brackets would force the whole message into UCS-2.
	SMSSignature string
}

// WithAutofill returns a copy of t that adds a's lines to every SMS.
func (t *Templates) WithAutofill(a Autofill) *Templates {
	c := *t
	c.autofill = a
	return &c
}

type localeSet struct {
	sms, subject, text *texttemplate.Template
	html               *htmltemplate.Template
}

// templateData is what every template sees.
type templateData struct {
	Code    string
	Minutes int // validity, rounded up so a code never lives shorter than promised
}

// NewTemplates parses the embedded templates. defaultLocale ("" for
// DefaultLocale) is used when a message's own locale matches none; it may be
// any spelling ValidLocale accepts.
func NewTemplates(defaultLocale string) (*Templates, error) {
	if defaultLocale == "" {
		defaultLocale = DefaultLocale
	}
	names := Locales()
	def := resolve(names, defaultLocale)
	if def == "" {
		return nil, fmt.Errorf("notify: unknown locale %q (have %s)", defaultLocale, strings.Join(names, ", "))
	}
	t := &Templates{defaultLocale: def, names: names, sets: make(map[string]*localeSet, len(names)), rendered: new(sync.Map)}
	for _, name := range names {
		set, err := parseLocale(name)
		if err != nil {
			return nil, err
		}
		t.sets[name] = set
	}
	return t, nil
}

func parseLocale(name string) (*localeSet, error) {
	read := func(file string) (string, error) {
		b, err := fs.ReadFile(templateFS, path.Join("templates", name, file))
		if err != nil {
			return "", fmt.Errorf("notify: locale %s: %w", name, err)
		}
		return string(b), nil
	}
	// missingkey=error turns a typo in a template into a render error instead
	// of "<no value>" in a user's inbox.
	text := func(file string) (*texttemplate.Template, error) {
		src, err := read(file)
		if err != nil {
			return nil, err
		}
		return texttemplate.New(file).Option("missingkey=error").Parse(src)
	}
	var set localeSet
	var err error
	if set.sms, err = text(smsFile); err != nil {
		return nil, err
	}
	if set.subject, err = text(emailSubjectFile); err != nil {
		return nil, err
	}
	if set.text, err = text(emailTextFile); err != nil {
		return nil, err
	}
	src, err := read(emailHTMLFile)
	if err != nil {
		return nil, err
	}
	if set.html, err = htmltemplate.New(emailHTMLFile).Option("missingkey=error").Parse(src); err != nil {
		return nil, err
	}
	return &set, nil
}

// Locales lists the shipped locales ("en", "zh-CN", ...), sorted.
func Locales() []string {
	entries, _ := fs.ReadDir(templateFS, "templates") // embedded: cannot fail
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// ValidLocale reports whether s names a shipped locale, exactly or by its
// language ("en-US" is en, "zh-Hans-CN" is zh-CN), so configuration can
// refuse a DEFAULT_LOCALE that would silently fall back.
func ValidLocale(s string) bool {
	return resolve(Locales(), s) != ""
}

// Locale returns the shipped locale a message in locale s is rendered in.
func (t *Templates) Locale(s string) string {
	if name := resolve(t.names, s); name != "" {
		return name
	}
	return t.defaultLocale
}

// resolve matches s against names: exactly (ignoring case and "_" for "-"),
// then by primary language subtag. It returns "" when nothing matches.
func resolve(names []string, s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "_", "-")
	if s == "" {
		return ""
	}
	for _, n := range names {
		if strings.EqualFold(n, s) {
			return n
		}
	}
	lang, _, _ := strings.Cut(s, "-")
	for _, n := range names {
		if l, _, _ := strings.Cut(n, "-"); strings.EqualFold(l, lang) {
			return n
		}
	}
	return ""
}

// Minutes is a code's validity as the messages state it: whole minutes,
// rounded up, at least one.
func Minutes(ttl time.Duration) int {
	return max(1, int((ttl+time.Minute-1)/time.Minute))
}

// Render renders m in its locale (m.Locale, else the default): the SMS text
// for verification.SMS, subject, text and HTML for verification.Email.
func (t *Templates) Render(m verification.Message) (Content, error) {
	locale, data := t.Locale(m.Locale), templateData{Code: m.Code, Minutes: Minutes(m.TTL)}
	var c Content
	var err error
	if p, ok := t.parts(locale, data.Minutes)[m.Channel]; ok && allDigits(m.Code) {
		c = p.with(m.Code)
	} else {
		c, err = t.sets[locale].execute(m.Channel, data)
	}
	if err != nil {
		return Content{}, fmt.Errorf("notify: render %s: %w", m.Channel, err)
	}
	if m.Channel == verification.SMS {
		c.Text = t.autofill.apply(c.Text, m)
	}
	return c, nil
}

// execute executes the set's templates for one message.
func (set *localeSet) execute(ch verification.Channel, data templateData) (Content, error) {
	var c Content
	var err error
	switch ch {
	case verification.SMS:
		c.Text, err = execute(set.sms, data)
	case verification.Email:
		if c.Subject, err = execute(set.subject, data); err != nil {
			break
		}
		// A header cannot hold a line break; one in the template would let
		// the rest of the subject spill into the message headers.
		c.Subject = strings.Join(strings.Fields(c.Subject), " ")
		if c.Text, err = execute(set.text, data); err != nil {
			break
		}
		var b bytes.Buffer
		err = set.html.Execute(&b, data)
		c.HTML = b.String()
	default:
		err = fmt.Errorf("unknown channel %q", ch)
	}
	return c, err
}

func execute(t *texttemplate.Template, data templateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// A code is digits, which a template renders as given: neither text nor
// HTML escaping touches them. So a locale's templates are executed once per
// validity, with a stand-in for the code, and a message is the parts around
// the stand-in joined by its own code. Executing the four templates on
// every message was about a twentieth of the service's own CPU in an email
// send.
type renderKey struct {
	locale  string
	minutes int
}

// The stand-in codes: digits, like every code, and two of them, to tell the
// code from the same digits in a template's own text.
const standIn, otherStandIn = "9081726354", "1928374655"

// splitContent is a Content split where the code goes.
type splitContent struct{ subject, text, html []string }

func (p splitContent) with(code string) Content {
	return Content{Subject: strings.Join(p.subject, code), Text: strings.Join(p.text, code), HTML: strings.Join(p.html, code)}
}

// parts returns the locale's messages for a validity of minutes, split
// where the code goes, by channel. A channel is missing when its templates
// fail, or render the code other than as given (a template that spaced its
// digits, say); Render executes those for each message.
func (t *Templates) parts(locale string, minutes int) map[verification.Channel]splitContent {
	key := renderKey{locale, minutes}
	if p, ok := t.rendered.Load(key); ok {
		return p.(map[verification.Channel]splitContent)
	}
	set := t.sets[locale]
	p := map[verification.Channel]splitContent{}
	for _, ch := range []verification.Channel{verification.SMS, verification.Email} {
		a, errA := set.execute(ch, templateData{Code: standIn, Minutes: minutes})
		b, errB := set.execute(ch, templateData{Code: otherStandIn, Minutes: minutes})
		split := splitContent{
			subject: strings.Split(a.Subject, standIn),
			text:    strings.Split(a.Text, standIn),
			html:    strings.Split(a.HTML, standIn),
		}
		if errA == nil && errB == nil && split.with(otherStandIn) == b {
			p[ch] = split
		}
	}
	t.rendered.Store(key, p)
	return p
}

func allDigits(s string) bool {
	for _, r := range []byte(s) {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// chinaPrefix starts every E.164 number of mainland China, and no other:
// country codes are prefix-free, so no longer code begins with 86.
const chinaPrefix = "+86"

// apply adds the autofill lines to an SMS body. The code stays in the first
// line, where a person reads it; the machine-read lines follow in the order
// their readers expect, the WebOTP line last.
func (a Autofill) apply(text string, m verification.Message) string {
	if a.SMSSignature != "" && strings.HasPrefix(m.To, chinaPrefix) {
		text = a.SMSSignature + text
	}
	if a.AndroidAppHash != "" {
		text += "\n" + a.AndroidAppHash
	}
	if a.WebOTPDomain != "" {
		text += "\n@" + a.WebOTPDomain + " #" + m.Code
	}
	return text
}
