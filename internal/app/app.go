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
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/logging"
	"github.com/verifykit/verifykit/internal/notify"
	"github.com/verifykit/verifykit/internal/secrets"
	"github.com/verifykit/verifykit/internal/token"
	"github.com/verifykit/verifykit/internal/verification"
)

// App is the built service.
type App struct {
	// Handler is the handler built with the keys read at start-up. The
	// entry points (Invoke, ServeHTTP) serve with the current keys
	// instead, which a warm instance re-reads every KEYS_REFRESH_SECONDS.
	Handler *httpapi.Handler
	Config  *config.Config
	Log     *slog.Logger
	// Outbox is set in local mode with the outbox sender, and DevOutbox is
	// then what GET /dev/outbox serves.
	Outbox    *notify.Outbox
	DevOutbox func() any

	keys *keyRefresher
}

// Options are what the caller provides besides the configuration.
type Options struct {
	Stdout io.Writer        // logs, metrics and (local) printed messages
	Now    func() time.Time // time.Now if nil
	// Metrics, when set, receives the metrics (CloudWatch embedded metric
	// format) in any mode; by default they go to Stdout in Lambda only, as
	// a local server has nowhere to send them.
	Metrics io.Writer
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
				awsErr = fmt.Errorf("aws config: %w", awsErr)
				return
			}
			awsCfg.Logger = sdkLogger{log}
			awsCfg.HTTPClient = awsHTTPClient(awsCfg.HTTPClient, 0)
		})
		return awsCfg, awsErr
	}

	readKeys, err := keyReader(cfg, o, awsConfig)
	if err != nil {
		return nil, err
	}
	var keys secrets.Keys
	if readKeys != nil {
		keys, err = readKeys(ctx)
	} else {
		keys, err = secrets.FromValues(cfg.HMACKey, cfg.SigningKeyPEM)
	}
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
	pumping := Pumping(cfg)
	store, err := newStore(cfg, o, awsConfig, phones, limits, pumping)
	if err != nil {
		return nil, err
	}
	senders, outbox, err := newSenders(ctx, cfg, o, awsConfig)
	if err != nil {
		return nil, err
	}
	a.Outbox = outbox
	dev := newDev(cfg, outbox)
	a.DevOutbox = dev.outbox()

	var metrics *logging.Metrics
	// Metrics go to CloudWatch through the Lambda log stream; a local server
	// has nowhere to send them.
	switch {
	case o.Metrics != nil:
		metrics = logging.NewMetrics(o.Metrics, cfg.MetricsNamespace, "verifykit")
	case cfg.Lambda:
		metrics = logging.NewMetrics(o.Stdout, cfg.MetricsNamespace, "verifykit")
	}
	var pages map[string]httpapi.Page
	if !cfg.Lambda {
		if pages, err = demoPages(cfg); err != nil {
			return nil, err
		}
	}
	// The Origin rule's list: the configured origins, and locally the
	// server's own, so its own pages can call it.
	cors := httpapi.NewCORS(append(cfg.LocalOrigins(), cfg.CORSAllowedOrigins...))
	ipKeys := httpapi.ClientIP{IPv6PrefixBits: cfg.IPv6PrefixBits, TrustedProxyHops: cfg.TrustedProxyHops}
	// The breakers' memory and their log belong to the instance and hold no
	// key: a rotation keeps them.
	breakerLog, watch := logging.NewBreakerLog(log, metrics, o.Now), &verification.BreakerWatch{}
	// build makes everything that holds a key; a rotation builds it again
	// around the same store, senders and breaker watch.
	build := func(keys secrets.Keys) (*httpapi.Handler, error) {
		captchas, err := newCaptchas(cfg, o, store, keys, dev)
		if err != nil {
			return nil, err
		}
		issuer, err := newTokens(cfg, keys)
		if err != nil {
			return nil, err
		}
		hkeys, err := verification.NewKeys(keys.HMAC)
		if err != nil {
			return nil, err
		}
		svc := verification.New(verification.Deps{
			Store:       store,
			Idempotency: store,
			Senders:     senders,
			Captcha:     captchas,
			Tokens:      issuer,
			Breaker:     breakerLog,
			Watch:       watch,
		}, verification.Options{
			Keys:     hkeys,
			Phones:   phones,
			Limits:   limits,
			Pumping:  pumping,
			TokenTTL: cfg.TokenTTL,
			Now:      o.Now,
		})
		return httpapi.New(svc, captchas, httpapi.Options{
			JWKS:      issuer.JWKS(),
			DevOutbox: a.DevOutbox,
			Pages:     pages,
			CORS:      cors,
			IP:        ipKeys,
			Log:       log,
			Metrics:   metrics,
			Now:       o.Now,
		}), nil
	}
	if a.Handler, err = build(keys); err != nil {
		return nil, err
	}
	a.keys = &keyRefresher{build: build, every: cfg.KeysRefresh, now: o.Now, log: log, keys: keys}
	a.keys.current.Store(a.Handler)
	a.keys.next.Store(o.Now().Add(cfg.KeysRefresh).UnixNano())
	a.keys.read = readKeys
	return a, nil
}

// newCaptchas builds the image captchas over store, keyed from keys.
func newCaptchas(cfg *config.Config, o Options, store captcha.Store, keys secrets.Keys, dev *dev) (*captcha.Service, error) {
	return captcha.NewService(store, keys.HMAC, captcha.Options{
		Now:         o.Now,
		TTL:         cfg.CaptchaTTL,
		MaxAttempts: cfg.CaptchaMaxAttempts,
		Length:      cfg.CaptchaLength,
		OnIssue:     dev.onIssue(),
	})
}

// newTokens builds the verification_token issuer: it signs with the current
// key and publishes the previous one, if any, until its tokens expire.
func newTokens(cfg *config.Config, keys secrets.Keys) (tokens, error) {
	// NewIssuer skips a nil previous key.
	previous := []*ecdsa.PublicKey{keys.Previous}
	issuer, err := token.NewIssuer(keys.Signing, token.IssuerOptions{Issuer: cfg.TokenIssuer, Audience: cfg.TokenAudience, TTL: cfg.TokenTTL, Previous: previous})
	return tokens{issuer}, err
}

// tokens is the domain's TokenIssuer: it hands package token the plain
// claims of a verified code, so token imports nothing of the domain.
type tokens struct{ *token.Issuer }

func (t tokens) Issue(v verification.Verified, now time.Time) (string, error) {
	return t.Issuer.Issue(token.Verified{Subject: v.Identity, Channel: string(v.Channel), Target: string(v.Target), IsUser: v.IsUser}, now)
}

// secretsClient is the Secrets Manager client of the keys and of the SMTP
// URL, at the endpoint the options give, if any.
func secretsClient(ac aws.Config, o Options) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(ac, func(c *secretsmanager.Options) { c.BaseEndpoint = o.endpoint("secretsmanager", c.BaseEndpoint) })
}

func (o Options) endpoint(service string, def *string) *string {
	if e, ok := o.Endpoints[service]; ok {
		return &e
	}
	return def
}

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

		VerifyIPCap:      cfg.VerifyIPHourlyLimit,
		CaptchaIPCap:     cfg.CaptchaIPHourlyLimit,
		CaptchaTokenUses: cfg.CaptchaTokenUses,
	}
}

// Pumping are the SMS pumping defences of the configuration.
func Pumping(cfg *config.Config) verification.Pumping {
	return verification.Pumping{
		Budget:          cfg.SMSHourlyBudget,
		PrefixLength:    cfg.SMSPrefixLength,
		UnverifiedLimit: cfg.PumpingUnverifiedLimit,
		Allow:           cfg.SMSPrefixAllow,
		Block:           cfg.SMSPrefixBlock,
		Window:          time.Hour,
	}
}

// keyReader reads the keys from KEYS_SECRET_ARN, with one Secrets Manager
// client for the cold start and every later refresh; nil without a secret
// (the keys are then given literally, or generated).
func keyReader(cfg *config.Config, o Options, awsConfig func() (aws.Config, error)) (func(context.Context) (secrets.Keys, error), error) {
	if cfg.KeysSecretARN == "" {
		return nil, nil
	}
	ac, err := awsConfig()
	if err != nil {
		return nil, err
	}
	sm := secretsClient(ac, o)
	return func(ctx context.Context) (secrets.Keys, error) {
		return secrets.FromSecretsManager(ctx, sm, cfg.KeysSecretARN)
	}, nil
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
	a.Log.Info("listening", "addr", "http://"+a.Config.Addr, "store", storeName(a.Config), "dev_outbox", a.DevOutbox != nil)
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
