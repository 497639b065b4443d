package app

import (
	"sync"

	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/notify"
)

// dev is the local server's /dev/ wiring: GET /dev/outbox shows the printed
// messages and the latest captchas with their answers, so a developer can
// walk through a send without a phone or an OCR. It exists only in local
// mode with the outbox sender; nil otherwise, and every method of a nil
// *dev does nothing.
type dev struct {
	messages *notify.Outbox
	captchas devCaptchas
}

func newDev(cfg *config.Config, outbox *notify.Outbox) *dev {
	if outbox == nil || cfg.Lambda {
		return nil
	}
	return &dev{messages: outbox}
}

// onIssue is the captcha service's OnIssue hook: nil when there is no
// /dev/outbox to show the answer.
func (d *dev) onIssue() func(token, answer string) {
	if d == nil {
		return nil
	}
	return d.captchas.add
}

// outbox is the handler's DevOutbox: nil leaves GET /dev/outbox unrouted.
func (d *dev) outbox() func() any {
	if d == nil {
		return nil
	}
	return func() any {
		return devSnapshot{Messages: d.messages.Messages(), Captchas: d.captchas.list()}
	}
}

type devSnapshot struct {
	Messages []notify.OutboxMessage `json:"messages"`
	Captchas []devCaptcha           `json:"captchas"`
}

type devCaptcha struct {
	Token  string `json:"token"`
	Answer string `json:"answer"`
}

// devCaptchas keeps the latest captchas with their answers, for local mode.
type devCaptchas struct {
	mu    sync.Mutex
	items []devCaptcha
}

func (d *devCaptchas) add(token, answer string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.items = append(d.items, devCaptcha{token, answer})
	if len(d.items) > 100 {
		d.items = d.items[len(d.items)-100:]
	}
}

func (d *devCaptchas) list() []devCaptcha {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]devCaptcha{}, d.items...)
}
