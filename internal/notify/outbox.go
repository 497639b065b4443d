package notify

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// DefaultOutboxLimit is how many messages an Outbox keeps when its options
// name no limit.
const DefaultOutboxLimit = 1000

// OutboxMessage is one message the Outbox received, in the shape of
// GET /dev/outbox. Text is the SMS text or the email's text body.
type OutboxMessage struct {
	Channel verification.Channel `json:"channel"`
	To      string               `json:"to"`
	Code    string               `json:"code"`
	Text    string               `json:"text"`
	SentAt  time.Time            `json:"sent_at"`
}

// OutboxOptions configures an Outbox. Every field is optional.
type OutboxOptions struct {
	// Writer gets one line per message, code included; nil prints nothing.
	Writer io.Writer
	// Limit is how many of the latest messages are kept (DefaultOutboxLimit
	// if zero), so a long-running local server cannot grow without bound.
	Limit int
	// Now stamps SentAt; time.Now if nil.
	Now func() time.Time
}

// Outbox is the local-mode sender: it delivers nothing, keeps the latest
// messages in memory for GET /dev/outbox and prints each one, so a developer
// can sign in without an AWS account. It never fails and is safe for
// concurrent use. It must never be wired in Lambda: it prints codes.
type Outbox struct {
	templates *Templates
	w         io.Writer
	limit     int
	now       func() time.Time

	mu   sync.Mutex
	msgs []OutboxMessage
}

// NewOutbox returns an Outbox rendering with t.
func NewOutbox(t *Templates, o OutboxOptions) *Outbox {
	if o.Limit <= 0 {
		o.Limit = DefaultOutboxLimit
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Outbox{templates: t, w: o.Writer, limit: o.Limit, now: o.Now}
}

// Send renders m, keeps it and prints it.
func (b *Outbox) Send(_ context.Context, m verification.Message) error {
	c, err := b.templates.Render(m)
	if err != nil {
		return err
	}
	msg := OutboxMessage{Channel: m.Channel, To: m.To, Code: m.Code, Text: c.Text, SentAt: b.now().UTC()}

	b.mu.Lock()
	defer b.mu.Unlock()
	// Up to twice the limit is kept and the oldest half dropped at once, so
	// a full outbox does not move every kept message on every send.
	if len(b.msgs) == 2*b.limit {
		b.msgs = append(b.msgs[:0], b.msgs[b.limit:]...)
	}
	b.msgs = append(b.msgs, msg)
	// Printing under the lock keeps lines whole and in the order kept; a
	// failed write must not fail a send that has nowhere else to go.
	if b.w != nil {
		if m.Channel == verification.Email {
			_, _ = fmt.Fprintf(b.w, "outbox: email to %s code %s subject %q text %q\n", m.To, m.Code, c.Subject, c.Text)
		} else {
			_, _ = fmt.Fprintf(b.w, "outbox: %s to %s code %s text %q\n", m.Channel, m.To, m.Code, c.Text)
		}
	}
	return nil
}

// Messages returns a copy of the latest messages (at most the limit),
// oldest first.
func (b *Outbox) Messages() []OutboxMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.msgs[max(0, len(b.msgs)-b.limit):]
	out := make([]OutboxMessage, len(kept))
	copy(out, kept)
	return out
}
