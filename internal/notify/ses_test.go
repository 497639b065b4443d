package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/verifykit/verifykit/internal/testenv"
	"github.com/verifykit/verifykit/internal/verification"
)

// fakeSES records what the sender asks of SES.
type fakeSES struct {
	calls []*sesv2.SendEmailInput
}

func (f *fakeSES) SendEmail(_ context.Context, in *sesv2.SendEmailInput, _ ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	f.calls = append(f.calls, in)
	return &sesv2.SendEmailOutput{MessageId: aws.String("ses-1")}, nil
}

var emailMessage = verification.Message{Channel: verification.Email, To: "user@example.com", Code: "135790", TTL: 5 * time.Minute}

func TestSESSendEmailInput(t *testing.T) {
	tests := []struct {
		name      string
		opts      SESOptions
		wantSet   string
		locale    string
		wantSubj  string
		wantInTxt string
	}{
		{"zh-CN without configuration set", SESOptions{From: "noreply@example.com"}, "", "", "您的验证码", "5 分钟内有效"},
		{"en with configuration set", SESOptions{From: "VerifyKit <noreply@example.com>", ConfigurationSet: "codes"}, "codes", "en", "Your verification code", "valid for 5 minutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeSES{}
			s, err := NewSES(fake, newTemplates(t, ""), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			m := emailMessage
			m.Locale = tt.locale
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if len(fake.calls) != 1 {
				t.Fatalf("got %d SendEmail calls, want 1", len(fake.calls))
			}
			in := fake.calls[0]
			if got := aws.ToString(in.FromEmailAddress); got != tt.opts.From {
				t.Errorf("From: got %q, want %q", got, tt.opts.From)
			}
			if got := aws.ToString(in.ConfigurationSetName); got != tt.wantSet || (tt.wantSet == "") != (in.ConfigurationSetName == nil) {
				t.Errorf("ConfigurationSetName: got %v, want %q", in.ConfigurationSetName, tt.wantSet)
			}
			if got := in.Destination.ToAddresses; !slices.Equal(got, []string{m.To}) {
				t.Errorf("To: got %v, want [%s]", got, m.To)
			}
			simple := in.Content.Simple
			if simple == nil || in.Content.Template != nil || in.Content.Raw != nil {
				t.Fatalf("Content: got %+v, want Simple only", in.Content)
			}
			if got := aws.ToString(simple.Subject.Data); got != tt.wantSubj {
				t.Errorf("Subject: got %q, want %q", got, tt.wantSubj)
			}
			for part, c := range map[string]*string{"subject": simple.Subject.Charset, "text": simple.Body.Text.Charset, "html": simple.Body.Html.Charset} {
				if got := aws.ToString(c); got != "UTF-8" {
					t.Errorf("%s charset: got %q, want UTF-8", part, got)
				}
			}
			text, html := aws.ToString(simple.Body.Text.Data), aws.ToString(simple.Body.Html.Data)
			if !strings.Contains(text, tt.wantInTxt) || !strings.Contains(text, m.Code) {
				t.Errorf("text: got %q, want %q and the code", text, tt.wantInTxt)
			}
			if !strings.Contains(html, m.Code) || !strings.HasPrefix(html, "<!DOCTYPE html>") {
				t.Errorf("html: got %q, want an HTML document with the code", html)
			}
		})
	}
}

func TestNewSESRefusals(t *testing.T) {
	for _, from := range []string{"", "not an address", "a@b@c"} {
		if _, err := NewSES(&fakeSES{}, newTemplates(t, ""), SESOptions{From: from}); err == nil {
			t.Errorf("NewSES(From %q): got nil error, want refusal", from)
		}
	}
	s, _ := NewSES(&fakeSES{}, newTemplates(t, ""), SESOptions{From: "noreply@example.com"})
	if err := s.Send(context.Background(), smsMessage); err == nil {
		t.Error("SMS through SES: got nil error, want refusal")
	}
}

func newSESClient(endpoint string) *sesv2.Client {
	return sesv2.New(sesv2.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// The shared attempt logic applies to SES as to SNS (REST-JSON rather than
// the Query protocol): hanging after the request is unknown, a refused
// connection is a failure.
func TestSESWireClassification(t *testing.T) {
	hanging, requests := hangingServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name        string
		endpoint    string
		wantUnknown bool
	}{
		{"timeout after send", hanging.URL, true},
		{"connection refused", closed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSES(newSESClient(tt.endpoint), newTemplates(t, ""), SESOptions{From: "noreply@example.com", AttemptTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), emailMessage)
			if err == nil || errors.Is(err, verification.ErrOutcomeUnknown) != tt.wantUnknown {
				t.Errorf("got %v, want an error with outcome unknown %v", err, tt.wantUnknown)
			}
		})
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("hanging server got %d requests, want 1", got)
	}
}

// sesStore is GET /store of aws-ses-v2-local.
type sesStore struct {
	Emails []struct {
		MessageID   string `json:"messageId"`
		From        string `json:"from"`
		Destination struct {
			To []string `json:"to"`
		} `json:"destination"`
		Subject string `json:"subject"`
		Body    struct {
			HTML string `json:"html"`
			Text string `json:"text"`
		} `json:"body"`
	} `json:"emails"`
}

func TestSESEndToEnd(t *testing.T) {
	endpoint := testenv.Get(t, testenv.SES)
	s, err := NewSES(newSESClient(endpoint), newTemplates(t, ""), SESOptions{From: "noreply@verifykit.test", ConfigurationSet: "codes"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		locale, wantSubject, wantText string
	}{
		{"", "您的验证码", "分钟内有效"},
		{"en", "Your verification code", "It is valid for 5 minutes"},
	}
	for _, tt := range tests {
		t.Run("locale "+tt.locale, func(t *testing.T) {
			m := emailMessage
			m.Locale = tt.locale
			// A recipient of its own finds this test's message in a store
			// other tests and runs share.
			m.To = fmt.Sprintf("ses-%d@example.com", time.Now().UnixNano())
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}

			resp, err := http.Get(endpoint + "/store")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var store sesStore
			if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
				t.Fatalf("decode /store: %v", err)
			}
			found := 0
			for _, e := range store.Emails {
				if !slices.Contains(e.Destination.To, m.To) {
					continue
				}
				found++
				if e.From != "noreply@verifykit.test" {
					t.Errorf("from: got %q, want noreply@verifykit.test", e.From)
				}
				if !slices.Equal(e.Destination.To, []string{m.To}) {
					t.Errorf("to: got %v, want [%s]", e.Destination.To, m.To)
				}
				if e.Subject != tt.wantSubject {
					t.Errorf("subject: got %q, want %q", e.Subject, tt.wantSubject)
				}
				if !strings.Contains(e.Body.Text, m.Code) || !strings.Contains(e.Body.Text, tt.wantText) {
					t.Errorf("text: got %q, want the code %s and %q", e.Body.Text, m.Code, tt.wantText)
				}
				if !strings.Contains(e.Body.HTML, m.Code) || !strings.Contains(e.Body.HTML, "<html") {
					t.Errorf("html: got %q, want an HTML document with the code %s", e.Body.HTML, m.Code)
				}
			}
			if found != 1 {
				t.Errorf("store has %d emails to %s, want 1", found, m.To)
			}
		})
	}
}
