package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// lockedBuffer is a writer the race detector accepts from many goroutines;
// the Outbox must serialise its writes anyway.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestOutboxKeepsAndPrints(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.FixedZone("CST", 8*3600))
	var out lockedBuffer
	box := NewOutbox(newTemplates(t, ""), OutboxOptions{Writer: &out, Now: func() time.Time { return at }})

	msgs := []verification.Message{
		{Channel: verification.SMS, To: "+8613800138000", Code: "111111", TTL: 10 * time.Minute},
		{Channel: verification.Email, To: "user@example.com", Code: "222222", TTL: 10 * time.Minute, Locale: "en"},
	}
	for _, m := range msgs {
		if err := box.Send(context.Background(), m); err != nil {
			t.Fatalf("Send(%s): %v", m.Channel, err)
		}
	}

	got := box.Messages()
	if len(got) != 2 {
		t.Fatalf("got %d messages, want 2", len(got))
	}
	for i, m := range msgs {
		g := got[i]
		if g.Channel != m.Channel || g.To != m.To || g.Code != m.Code || !g.SentAt.Equal(at) {
			t.Errorf("message %d: got %+v, want channel %s to %s code %s at %v", i, g, m.Channel, m.To, m.Code, at)
		}
		if !strings.Contains(g.Text, m.Code) {
			t.Errorf("message %d: text %q does not contain the code %s", i, g.Text, m.Code)
		}
	}
	if !strings.Contains(got[1].Text, "valid for 10 minutes") {
		t.Errorf("email text %q: want the en template", got[1].Text)
	}

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"sms to +8613800138000 code 111111", "email to user@example.com code 222222 subject \"Your verification code\""} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d: got %q, want it to contain %q", i, lines[i], want)
		}
	}

	// The JSON shape of GET /dev/outbox.
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"channel", "to", "code", "text", "sent_at"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON %s: missing key %q", b, k)
		}
	}
	if len(fields) != 5 {
		t.Errorf("JSON %s: got %d keys, want 5", b, len(fields))
	}
	if fields["channel"] != "sms" || fields["sent_at"] != "2026-11-25T04:00:00Z" {
		t.Errorf("JSON %s: got channel %v sent_at %v, want sms 2026-11-25T04:00:00Z", b, fields["channel"], fields["sent_at"])
	}
}

func TestOutboxMessagesIsACopy(t *testing.T) {
	box := NewOutbox(newTemplates(t, ""), OutboxOptions{})
	_ = box.Send(context.Background(), verification.Message{Channel: verification.SMS, To: "+8613800138000", Code: "123456", TTL: time.Minute})
	got := box.Messages()
	got[0].Code = "000000"
	if again := box.Messages(); again[0].Code != "123456" {
		t.Errorf("after editing the returned slice: got code %s, want 123456", again[0].Code)
	}
}

func TestOutboxLimit(t *testing.T) {
	box := NewOutbox(newTemplates(t, ""), OutboxOptions{Limit: 3})
	for i := range 5 {
		m := verification.Message{Channel: verification.SMS, To: "+8613800138000", Code: fmt.Sprintf("%06d", i), TTL: time.Minute}
		if err := box.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := box.Messages()
	var codes []string
	for _, m := range got {
		codes = append(codes, m.Code)
	}
	if g, want := strings.Join(codes, ","), "000002,000003,000004"; g != want {
		t.Errorf("kept codes %s, want %s (the latest 3, oldest first)", g, want)
	}
}

func TestOutboxConcurrent(t *testing.T) {
	var out lockedBuffer
	box := NewOutbox(newTemplates(t, ""), OutboxOptions{Writer: &out, Limit: 50})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			m := verification.Message{Channel: verification.Email, To: fmt.Sprintf("u%d@example.com", i), Code: fmt.Sprintf("%06d", i), TTL: time.Minute}
			if err := box.Send(context.Background(), m); err != nil {
				t.Error(err)
			}
			_ = box.Messages()
		})
	}
	wg.Wait()
	if got := len(box.Messages()); got != 50 {
		t.Errorf("kept %d messages, want 50", got)
	}
	if got := strings.Count(out.String(), "\n"); got != 100 {
		t.Errorf("printed %d lines, want 100", got)
	}
}
