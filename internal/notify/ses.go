package notify

import (
	"context"
	"fmt"
	"net/mail"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/verifykit/verifykit/internal/verification"
)

// SESSender is the part of *sesv2.Client the email sender uses.
type SESSender interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// SESOptions configures an SES sender.
type SESOptions struct {
	// From is the verified SES identity mail comes from, a bare address or
	// "Name <address>". Required.
	From string
	// ConfigurationSet names the SES configuration set (event publishing,
	// dedicated IPs); optional.
	ConfigurationSet string
	// AttemptTimeout bounds each of the (at most two) attempts;
	// DefaultAttemptTimeout if zero.
	AttemptTimeout time.Duration
}

// SES sends email through Amazon SES v2.
type SES struct {
	client    SESSender
	templates *Templates
	from      string
	configSet *string
	retryer   func(aws.Retryer) aws.Retryer
	attempt   func(*middleware.Stack) error
}

// NewSES returns an email sender using client. It refuses a missing or
// malformed From, which SES would otherwise reject on every send.
func NewSES(client SESSender, t *Templates, o SESOptions) (*SES, error) {
	if _, err := mail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("notify: email from address %q: %w", o.From, err)
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	s := &SES{client: client, templates: t, from: o.From}
	if o.ConfigurationSet != "" {
		s.configSet = aws.String(o.ConfigurationSet)
	}
	s.retryer, s.attempt = sdkCall(o.AttemptTimeout)
	return s, nil
}

// Send emails m to m.To as text and HTML. An error wrapping
// verification.ErrOutcomeUnknown means SES may still deliver it.
func (s *SES) Send(ctx context.Context, m verification.Message) error {
	if m.Channel != verification.Email {
		return fmt.Errorf("notify: SES sends email, not %s", m.Channel)
	}
	c, err := s.templates.Render(m)
	if err != nil {
		return err
	}
	utf8 := func(v string) *types.Content {
		return &types.Content{Data: aws.String(v), Charset: aws.String("UTF-8")}
	}
	_, err = s.client.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress:     aws.String(s.from),
		ConfigurationSetName: s.configSet,
		Destination:          &types.Destination{ToAddresses: []string{m.To}},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: utf8(c.Subject),
			Body:    &types.Body{Text: utf8(c.Text), Html: utf8(c.HTML)},
		}},
	}, func(o *sesv2.Options) {
		o.Retryer = s.retryer(o.Retryer)
		o.APIOptions = append(o.APIOptions, s.attempt)
	})
	if err != nil {
		return failed("ses send email", err)
	}
	return nil
}
