// Package app builds the service from its configuration: secrets, AWS
// clients, stores, senders, captchas, tokens and the HTTP handler. The
// entry point in functions/ only loads the configuration, calls New and
// starts what it returns; tests build the same App.
package app

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/dynamo"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/logging"
	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/notify"
	"github.com/verifykit/verifykit/internal/secrets"
	"github.com/verifykit/verifykit/internal/token"
	"github.com/verifykit/verifykit/internal/verification"
)

// App is the built service.
type App struct {
	// Handler is the handler built with the keys read at start-up. The
	// entry points (HandleLambda, ServeHTTP) serve with the current keys
	// instead, which a warm instance re-reads every KEYS_REFRESH_SECONDS.
	Handler *httpapi.Handler
	Config  *config.Config
	Log     *slog.Logger
	// Outbox is set in local mode with the outbox sender.
	Outbox *notify.Outbox

	keys *keyRefresher
}

// Options are what the caller provides besides the configuration.
type Options struct {
	Stdout io.Writer        // logs, metrics and (local) printed messages
	Now    func() time.Time // time.Now if nil
	// AWSConfig, when set, replaces the SDK's default configuration chain
	// (tests give static credentials and a region for the local stand-ins).
	AWSConfig *aws.Config
	// Endpoints overrides the endpoint of a service by SDK name ("dynamodb",
	// "sesv2", "sns", "secretsmanager"), as AWS_ENDPOINT_URL_<SERVICE> does from the
	// environment, without touching the process environment.
	Endpoints map[string]string
	// DynamoOptions are extra options for the DynamoDB client (tests count
	// round trips with them).
	DynamoOptions []func(*dynamodb.Options)
}

// Load reads the configuration from getenv with the checks of this
// service's packages.
func Load(getenv func(string) string) (*config.Config, error) {
	return config.Load(getenv, config.Checks{
		Region: func(r string) bool { _, err := verification.NewPhoneParser([]string{r}); return err == nil },
		Locale: notify.ValidLocale,
	})
}

// New builds the service.
func New(ctx context.Context, cfg *config.Config, o Options) (*App, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := logging.NewLogger(cfg.Lambda, o.Stdout, level)
	a := &App{Config: cfg, Log: log}

	// AWS configuration is loaded only when something needs it, so local mode
	// starts without credentials. Endpoints follow the SDK's own variables
	// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_DYNAMODB, ...).
	var awsCfg aws.Config
	var awsOnce sync.Once
	var awsErr error
	awsConfig := func() (aws.Config, error) {
		awsOnce.Do(func() {
			if o.AWSConfig != nil {
				awsCfg = *o.AWSConfig
			} else if awsCfg, awsErr = awsconfig.LoadDefaultConfig(ctx); awsErr != nil {
				return
			}
			awsCfg.Logger = sdkLogger{log}
			awsCfg.HTTPClient = awsHTTPClient(awsCfg.HTTPClient, 0)
		})
		return awsCfg, awsErr
	}

	keys, err := loadKeys(ctx, cfg, o, awsConfig)
	if err != nil {
		return nil, err
	}
	if keys.Generated {
		log.Warn("no KEYS_SECRET_ARN, HMAC_KEY or SIGNING_KEY: generated keys for this process only; codes and tokens will not survive a restart or work across instances")
	}

	phones, err := verification.NewPhoneParser(cfg.AllowedPhoneRegions)
	if err != nil {
		return nil, err
	}
	limits := Limits(cfg)

	var store interface {
		verification.Store
		verification.Users
		captcha.Store
	}
	if cfg.VerificationTable != "" {
		ac, err := awsConfig()
		if err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
		db := dynamodb.NewFromConfig(ac, append([]func(*dynamodb.Options){func(d *dynamodb.Options) {
			d.BaseEndpoint = o.endpoint("dynamodb", d.BaseEndpoint)
			// Fail closed within the function's budget: three attempts with
			// short backoffs (the SDK's default cap is 20 s) and a bound on
			// each attempt, then service_unavailable.
			d.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(), dynamoMaxBackoff)
			d.HTTPClient = awsHTTPClient(ac.HTTPClient, dynamoAttemptTimeout)
			// The CRC32 of an answer repeats what TLS already ensures on
			// the SDK's HTTPS endpoint, and the check wraps every body: a
			// hash per call and, on an error answer not read to its end (a
			// failed condition), a "failed to close HTTP response body"
			// warning on every refused send.
			d.DisableValidateResponseChecksum = true
		}}, append(slices.Clone(o.DynamoOptions), staticDynamoEndpoint)...)...)
		if store, err = dynamo.New(db, cfg.VerificationTable, cfg.UsersTable, limits); err != nil {
			return nil, err
		}
	} else {
		users := make([]string, 0, len(cfg.DevUsers))
		for _, u := range cfg.DevUsers {
			addr, err := phones.Parse(u)
			if err != nil {
				if addr, err = verification.ParseEmail(u); err != nil {
					return nil, fmt.Errorf("configuration: DEV_USERS has an entry that is neither a valid phone number nor email: %q", u)
				}
			}
			users = append(users, addr.Identity)
		}
		store = memstore.New(limits, users)
	}

	tmpl, err := notify.NewTemplates(cfg.DefaultLocale)
	if err != nil {
		return nil, err
	}
	senders, outbox, err := buildSenders(ctx, cfg, tmpl, o, awsConfig)
	if err != nil {
		return nil, err
	}
	a.Outbox = outbox

	var dev *devCaptchas
	if outbox != nil {
		dev = &devCaptchas{}
	}
	var metrics *logging.Metrics
	// Metrics go to CloudWatch through the Lambda log stream; a local server
	// has nowhere to send them.
	if cfg.Lambda {
		metrics = logging.NewMetrics(o.Stdout, cfg.MetricsNamespace, "verifykit")
	}
	var pages map[string]httpapi.Page
	if !cfg.Lambda {
		if pages, err = demoPages(cfg); err != nil {
			return nil, err
		}
	}
	var cors *httpapi.CORS
	if len(cfg.CORSAllowedOrigins) > 0 {
		cors = httpapi.NewCORS(cfg.CORSAllowedOrigins)
	}
	// build makes everything that holds a key; a rotation builds it again
	// around the same store and senders.
	build := func(keys secrets.Keys) (*httpapi.Handler, error) {
		captchas, err := captcha.NewService(store, keys.HMAC)
		if err != nil {
			return nil, err
		}
		captchas.Now, captchas.TTL = o.Now, cfg.CaptchaTTL
		if dev != nil {
			captchas.OnIssue = dev.add
		}
		var previous []*ecdsa.PublicKey
		if keys.Previous != nil {
			previous = append(previous, keys.Previous)
		}
		issuer, err := token.NewIssuer(keys.Signing, cfg.TokenIssuer, cfg.TokenAudience, cfg.TokenTTL, previous...)
		if err != nil {
			return nil, err
		}
		hkeys, err := verification.NewKeys(keys.HMAC)
		if err != nil {
			return nil, err
		}
		svc := &verification.Service{
			Store:    store,
			Users:    store,
			Senders:  senders,
			Captcha:  captchas,
			Tokens:   issuer,
			Keys:     hkeys,
			Phones:   phones,
			Limits:   limits,
			TokenTTL: cfg.TokenTTL,
			Now:      o.Now,
		}
		h := &httpapi.Handler{
			Verification: svc,
			Captchas:     captchas,
			JWKS:         issuer.JWKS(),
			Log:          log,
			Now:          o.Now,
			CORS:         cors,
			Metrics:      metrics,
			Pages:        pages,
		}
		if outbox != nil && !cfg.Lambda {
			h.DevOutbox = func() any {
				return devSnapshot{Messages: outbox.Messages(), Captchas: dev.list()}
			}
		}
		return h, nil
	}
	if a.Handler, err = build(keys); err != nil {
		return nil, err
	}
	a.keys = &keyRefresher{build: build, every: cfg.KeysRefresh, now: o.Now, log: log, keys: keys}
	a.keys.current.Store(a.Handler)
	a.keys.next.Store(o.Now().Add(cfg.KeysRefresh).UnixNano())
	if cfg.KeysSecretARN != "" {
		ac, err := awsConfig()
		if err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
		sm := secretsmanager.NewFromConfig(ac, func(c *secretsmanager.Options) { c.BaseEndpoint = o.endpoint("secretsmanager", c.BaseEndpoint) })
		a.keys.read = func(ctx context.Context) (secrets.Keys, error) {
			return secrets.FromSecretsManager(ctx, sm, cfg.KeysSecretARN)
		}
	}
	return a, nil
}

func (o Options) endpoint(service string, def *string) *string {
	if e, ok := o.Endpoints[service]; ok {
		return &e
	}
	return def
}

// DynamoDB calls take milliseconds; these bound a sick table's cost to about
// 3 × 2 s, inside the function's 10 s timeout.
const (
	dynamoMaxBackoff     = 200 * time.Millisecond
	dynamoAttemptTimeout = 2 * time.Second
)

// Limits are the sending rules of the configuration.
func Limits(cfg *config.Config) verification.Limits {
	return verification.Limits{
		Cooldown:       cfg.ResendCooldown,
		TargetCap:      cfg.TargetDailyLimit,
		TargetWindow:   24 * time.Hour,
		IPCap:          cfg.IPHourlyLimit,
		IPWindow:       time.Hour,
		CaptchaIPGate:  cfg.CaptchaIPThreshold,
		CaptchaTgtGate: cfg.CaptchaTargetThreshold,
		MaxAttempts:    cfg.MaxVerifyAttempts,
		CodeTTL:        cfg.CodeTTL,
	}
}

func loadKeys(ctx context.Context, cfg *config.Config, o Options, awsConfig func() (aws.Config, error)) (secrets.Keys, error) {
	if cfg.KeysSecretARN == "" {
		return secrets.FromValues(cfg.HMACKey, cfg.SigningKeyPEM)
	}
	ac, err := awsConfig()
	if err != nil {
		return secrets.Keys{}, fmt.Errorf("aws config: %w", err)
	}
	return secrets.FromSecretsManager(ctx, secretsmanager.NewFromConfig(ac, func(c *secretsmanager.Options) { c.BaseEndpoint = o.endpoint("secretsmanager", c.BaseEndpoint) }), cfg.KeysSecretARN)
}

// buildSenders returns a sender per switched-on channel that has one. A
// channel without a sender (email in Lambda without EMAIL_FROM) is missing
// from the map, which the service answers with channel_disabled.
func buildSenders(ctx context.Context, cfg *config.Config, tmpl *notify.Templates, o Options, awsConfig func() (aws.Config, error)) (map[verification.Channel]verification.Sender, *notify.Outbox, error) {
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
				return nil, nil, fmt.Errorf("aws config: %w", err)
			}
			s, err := notify.NewSNS(sns.NewFromConfig(ac, func(c *sns.Options) { c.BaseEndpoint = o.endpoint("sns", c.BaseEndpoint) }, staticSNSEndpoint), tmpl, notify.SNSOptions{SenderID: cfg.SMSSenderID})
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
				return nil, nil, fmt.Errorf("aws config: %w", err)
			}
			s, err := notify.NewSES(sesv2.NewFromConfig(ac, func(c *sesv2.Options) { c.BaseEndpoint = o.endpoint("sesv2", c.BaseEndpoint) }, staticSESEndpoint), tmpl, notify.SESOptions{From: cfg.EmailFrom, ConfigurationSet: cfg.SESConfigurationSet})
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
					return nil, nil, fmt.Errorf("aws config: %w", err)
				}
				if url, err = secrets.String(ctx, secretsmanager.NewFromConfig(ac), cfg.SMTPURLSecretARN); err != nil {
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

// Serve runs the local HTTP server until ctx ends.
func (a *App) Serve(ctx context.Context) error {
	srv := &http.Server{
		Addr:              a.Config.Addr,
		Handler:           a,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	a.Log.Info("listening", "addr", "http://"+a.Config.Addr, "store", storeName(a.Config), "dev_outbox", a.Handler.DevOutbox != nil)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

func storeName(c *config.Config) string {
	if c.VerificationTable != "" {
		return "dynamodb:" + c.VerificationTable
	}
	return "memory"
}
