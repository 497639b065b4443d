package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/verifykit/verifykit/internal/verification"
)

// fakePublisher records what the sender asks of SNS.
type fakePublisher struct {
	mu    sync.Mutex
	calls []*sns.PublishInput
	err   error
}

func (f *fakePublisher) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	if f.err != nil {
		return nil, f.err
	}
	return &sns.PublishOutput{MessageId: aws.String("m-1")}, nil
}

var smsMessage = verification.Message{Channel: verification.SMS, To: "+8613800138000", Code: "424242", TTL: 10 * time.Minute}

func TestSNSPublishInput(t *testing.T) {
	tests := []struct {
		name     string
		senderID string
		locale   string
		wantText string
	}{
		{"default locale, no sender ID", "", "", "您的验证码是 424242，10 分钟内有效"},
		{"en with sender ID", "VerifyKit", "en-US", "Your code is 424242, valid for 10 min."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakePublisher{}
			s, err := NewSNS(fake, newTemplates(t, ""), SNSOptions{SenderID: tt.senderID})
			if err != nil {
				t.Fatal(err)
			}
			m := smsMessage
			m.Locale = tt.locale
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			if len(fake.calls) != 1 {
				t.Fatalf("got %d Publish calls, want 1", len(fake.calls))
			}
			in := fake.calls[0]
			if got := aws.ToString(in.PhoneNumber); got != m.To {
				t.Errorf("PhoneNumber: got %q, want %q", got, m.To)
			}
			if got := aws.ToString(in.Message); !strings.Contains(got, tt.wantText) {
				t.Errorf("Message: got %q, want it to contain %q", got, tt.wantText)
			}
			if in.TopicArn != nil || in.TargetArn != nil {
				t.Errorf("got TopicArn %v TargetArn %v, want a direct SMS", in.TopicArn, in.TargetArn)
			}
			typ := in.MessageAttributes["AWS.SNS.SMS.SMSType"]
			if aws.ToString(typ.DataType) != "String" || aws.ToString(typ.StringValue) != "Transactional" {
				t.Errorf("SMSType: got %s/%s, want String/Transactional", aws.ToString(typ.DataType), aws.ToString(typ.StringValue))
			}
			id, ok := in.MessageAttributes["AWS.SNS.SMS.SenderID"]
			if got := aws.ToString(id.StringValue); ok != (tt.senderID != "") || got != tt.senderID {
				t.Errorf("SenderID: got %q (present %v), want %q", got, ok, tt.senderID)
			}
		})
	}
}

func TestSNSErrors(t *testing.T) {
	fake := &fakePublisher{err: errors.New("boom")}
	s, err := NewSNS(fake, newTemplates(t, ""), SNSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), smsMessage); err == nil || errors.Is(err, verification.ErrOutcomeUnknown) {
		t.Errorf("provider error: got %v, want an ordinary error", err)
	}
	email := smsMessage
	email.Channel = verification.Email
	if err := s.Send(context.Background(), email); err == nil {
		t.Error("email through SNS: got nil error, want refusal")
	}
	if len(fake.calls) != 1 {
		t.Errorf("got %d Publish calls, want 1 (the email must not reach SNS)", len(fake.calls))
	}
}

func TestSNSSenderIDValidation(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"VerifyKit", true}, {"A", true}, {"ABCDEFGHIJK", true}, {"Code2FA", true},
		{"ABCDEFGHIJKL", false}, {"12345", false}, {"Verify Kit", false}, {"Verify-Kit", false}, {"验证码", false},
	}
	for _, tt := range tests {
		_, err := NewSNS(&fakePublisher{}, newTemplates(t, ""), SNSOptions{SenderID: tt.id})
		if got := err == nil; got != tt.ok {
			t.Errorf("NewSNS(SenderID %q): got error %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

// newSNSClient is the real SDK client pointed at a test endpoint, as
// local-stand-ins.md configures every client.
func newSNSClient(endpoint string, mod ...func(*sns.Options)) *sns.Client {
	return sns.New(sns.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, mod...)
}

const publishResponse = `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId></PublishResult><ResponseMetadata><RequestId>f187a3c1-376f-11df-8963-01868b7c937a</RequestId></ResponseMetadata></PublishResponse>`

func snsError(code, typ string) string {
	return fmt.Sprintf(`<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>%s</Type><Code>%s</Code><Message>test error</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`, typ, code)
}

// snsServer is a fake SNS endpoint: it records each request's form and
// answers with status and body.
type snsServer struct {
	*httptest.Server
	requests atomic.Int32
	mu       sync.Mutex
	forms    []url.Values
}

func newSNSServer(t *testing.T, status int, body string) *snsServer {
	s := &snsServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// attributes reads MessageAttributes.entry.N.{Name,Value.DataType,Value.StringValue}.
func attributes(form url.Values) map[string][2]string {
	out := map[string][2]string{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("MessageAttributes.entry.%d.", i)
		name := form.Get(p + "Name")
		if name == "" {
			return out
		}
		out[name] = [2]string{form.Get(p + "Value.DataType"), form.Get(p + "Value.StringValue")}
	}
}

func TestSNSWire(t *testing.T) {
	srv := newSNSServer(t, http.StatusOK, publishResponse)
	for _, o := range []SNSOptions{{}, {SenderID: "VerifyKit"}, {MaxPrice: "0.05"}, {SenderID: "VerifyKit", MaxPrice: "0.5"}} {
		t.Run(fmt.Sprintf("sender ID %q max price %q", o.SenderID, o.MaxPrice), func(t *testing.T) {
			s, err := NewSNS(newSNSClient(srv.URL), newTemplates(t, ""), o)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), smsMessage); err != nil {
				t.Fatalf("Send: %v", err)
			}
			srv.mu.Lock()
			form := srv.forms[len(srv.forms)-1]
			srv.mu.Unlock()
			for k, want := range map[string]string{"Action": "Publish", "Version": "2010-03-31", "PhoneNumber": "+8613800138000"} {
				if got := form.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if got := form.Get("Message"); !strings.Contains(got, "424242") {
				t.Errorf("Message: got %q, want the code 424242 in it", got)
			}
			if form.Has("TopicArn") || form.Has("TargetArn") {
				t.Errorf("form %v: want no TopicArn or TargetArn", form)
			}
			attrs := attributes(form)
			if got, want := attrs["AWS.SNS.SMS.SMSType"], [2]string{"String", "Transactional"}; got != want {
				t.Errorf("SMSType: got %v, want %v", got, want)
			}
			wantAttrs := 1
			if o.SenderID != "" {
				wantAttrs++
				if got, want := attrs["AWS.SNS.SMS.SenderID"], [2]string{"String", o.SenderID}; got != want {
					t.Errorf("SenderID: got %v, want %v", got, want)
				}
			}
			if o.MaxPrice != "" {
				// SMS_MAX_PRICE: SNS drops a message that would cost more.
				wantAttrs++
				if got, want := attrs["AWS.SNS.SMS.MaxPrice"], [2]string{"Number", o.MaxPrice}; got != want {
					t.Errorf("MaxPrice: got %v, want %v", got, want)
				}
			}
			if len(attrs) != wantAttrs {
				t.Errorf("got attributes %v, want %d", attrs, wantAttrs)
			}
		})
	}
}

func TestSNSWireFailures(t *testing.T) {
	tests := []struct {
		name         string
		status       int
		body         string
		wantRequests int32
	}{
		{"client error is not retried", http.StatusBadRequest, snsError("InvalidParameter", "Sender"), 1},
		{"server error is retried once", http.StatusInternalServerError, snsError("InternalError", "Receiver"), 2},
		{"throttling is retried once", http.StatusBadRequest, snsError("Throttling", "Sender"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSNSServer(t, tt.status, tt.body)
			s, err := NewSNS(newSNSClient(srv.URL), newTemplates(t, ""), SNSOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), smsMessage)
			if err == nil || errors.Is(err, verification.ErrOutcomeUnknown) {
				t.Errorf("got %v, want an ordinary error", err)
			}
			if got := srv.requests.Load(); got != tt.wantRequests {
				t.Errorf("got %d requests, want %d", got, tt.wantRequests)
			}
		})
	}
}

// hangingServer reads each request and never answers until the test ends.
func hangingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var requests atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		_ = r.ParseForm()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: handlers return, then Close
	return srv, &requests
}

func TestSNSWireTimeoutAfterSendIsUnknown(t *testing.T) {
	tests := []struct {
		name string
		opts SNSOptions
		mod  func(*sns.Options)
	}{
		{"attempt timeout", SNSOptions{AttemptTimeout: 300 * time.Millisecond}, nil},
		// An HTTP client's own timeout is retryable to the SDK; after the
		// request went out it must not be retried.
		{"http client timeout", SNSOptions{AttemptTimeout: 10 * time.Second},
			func(o *sns.Options) { o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests := hangingServer(t)
			var mods []func(*sns.Options)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			s, err := NewSNS(newSNSClient(srv.URL, mods...), newTemplates(t, ""), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), smsMessage)
			if !errors.Is(err, verification.ErrOutcomeUnknown) {
				t.Errorf("got %v, want an error wrapping ErrOutcomeUnknown", err)
			}
			if got := requests.Load(); got != 1 {
				t.Errorf("got %d requests, want 1 (no retry once the outcome is unknown)", got)
			}
		})
	}
}

// doFunc is an SDK HTTP client.
type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func TestSNSWireDefiniteFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name     string
		endpoint string
		mod      func(*sns.Options)
	}{
		{"connection refused", closed, nil},
		{"unknown host", "http://notify-test.invalid", nil},
		// A timeout before anything was written (say, a connect that hangs)
		// means SNS never saw the request.
		{"timeout before the request was written", "http://127.0.0.1:1", func(o *sns.Options) {
			o.HTTPClient = doFunc(func(r *http.Request) (*http.Response, error) {
				<-r.Context().Done()
				return nil, r.Context().Err()
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*sns.Options)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			s, err := NewSNS(newSNSClient(tt.endpoint, mods...), newTemplates(t, ""), SNSOptions{AttemptTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), smsMessage)
			if err == nil || errors.Is(err, verification.ErrOutcomeUnknown) {
				t.Errorf("got %v, want an ordinary error", err)
			}
		})
	}
}
