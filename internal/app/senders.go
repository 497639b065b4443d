package app

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/notify"
	"github.com/verifykit/verifykit/internal/secrets"
	"github.com/verifykit/verifykit/internal/verification"
)

// newSenders builds the message templates and a sender over them per
// switched-on channel that has one. A channel without a sender (email in
// Lambda without EMAIL_FROM) is missing from the map, which the service
// answers with channel_disabled. The outbox is set when a channel prints its
// messages instead of sending them.
func newSenders(ctx context.Context, cfg *config.Config, o Options, awsConfig func() (aws.Config, error)) (map[verification.Channel]verification.Sender, *notify.Outbox, error) {
	tmpl, err := notify.NewTemplates(cfg.DefaultLocale)
	if err != nil {
		return nil, nil, err
	}
	tmpl = tmpl.WithAutofill(notify.Autofill{WebOTPDomain: cfg.WebOTPDomain, AndroidAppHash: cfg.AndroidAppHash, SMSSignature: cfg.SMSSignature})
	senders := map[verification.Channel]verification.Sender{}
	var outbox *notify.Outbox
	newOutbox := func() *notify.Outbox {
		if outbox == nil {
			outbox = notify.NewOutbox(tmpl, notify.OutboxOptions{Writer: o.Stdout, Now: o.Now})
		}
		return outbox
	}
	if cfg.ChannelOn("sms") {
		switch cfg.SMSSender {
		case "outbox":
			senders[verification.SMS] = newOutbox()
		case "sns":
			ac, err := awsConfig()
			if err != nil {
				return nil, nil, err
			}
			s, err := notify.NewSNS(sns.NewFromConfig(ac, func(c *sns.Options) {
				c.BaseEndpoint, c.HTTPClient = o.endpoint("sns", c.BaseEndpoint), oneWrite{c.HTTPClient}
			}, staticSNSEndpoint), tmpl, notify.SNSOptions{SenderID: cfg.SMSSenderID, MaxPrice: cfg.SMSMaxPrice})
			if err != nil {
				return nil, nil, fmt.Errorf("configuration: SMS_SENDER_ID: %w", err)
			}
			senders[verification.SMS] = s
		}
	}
	if cfg.ChannelOn("email") {
		switch cfg.EmailSender {
		case "outbox":
			senders[verification.Email] = newOutbox()
		case "ses":
			if cfg.EmailFrom == "" {
				break // channel_disabled: no identity to send from
			}
			ac, err := awsConfig()
			if err != nil {
				return nil, nil, err
			}
			s, err := notify.NewSES(sesv2.NewFromConfig(ac, func(c *sesv2.Options) {
				c.BaseEndpoint, c.HTTPClient = o.endpoint("sesv2", c.BaseEndpoint), oneWrite{c.HTTPClient}
			}, staticSESEndpoint), tmpl, notify.SESOptions{From: cfg.EmailFrom, ConfigurationSet: cfg.SESConfigurationSet})
			if err != nil {
				return nil, nil, fmt.Errorf("configuration: EMAIL_FROM: %w", err)
			}
			senders[verification.Email] = s
		case "smtp":
			if cfg.EmailFrom == "" {
				break
			}
			url := cfg.SMTPURL
			if cfg.SMTPURLSecretARN != "" {
				ac, err := awsConfig()
				if err != nil {
					return nil, nil, err
				}
				if url, err = secrets.String(ctx, secretsClient(ac, o), cfg.SMTPURLSecretARN); err != nil {
					return nil, nil, err
				}
			}
			s, err := notify.NewSMTP(tmpl, notify.SMTPOptions{URL: url, From: cfg.EmailFrom})
			if err != nil {
				return nil, nil, fmt.Errorf("configuration: SMTP_URL: %w", err)
			}
			senders[verification.Email] = s
		}
	}
	return senders, outbox, nil
}
