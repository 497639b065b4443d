package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
)

const templateFile = "../../template.yaml"

// How goformation is made to show references. By default it turns a Ref or
// GetAtt to a resource into "" and cannot evaluate Fn::If, so a template with
// a broken reference would still pass. The handlers below resolve pseudo
// parameters and parameters (their Default, or the world's override) and
// turn resource references into placeholders such as "{Ref:VerificationTable}"
// and "{GetAtt:VerificationTable.Arn}"; Fn::If takes the branch its condition
// has in the world being checked (see worlds).
const (
	region    = "us-east-1" // what intrinsics.Ref answers for AWS::Region
	accountID = "123456789012"
)

func refPlaceholder(name string) string    { return "{Ref:" + name + "}" }
func getAttPlaceholder(name string) string { return "{GetAtt:" + name + "}" }

// untypedProperties are the properties goformation v7.14.9 cannot hold. They
// are checked on the raw document (TestUntypedProperties) and removed before
// the typed parse, which would otherwise fail as a whole.
var untypedProperties = []struct{ resource, property, why string }{
	{"VerificationFunction", "LoggingConfig", "missing from goformation's AWS::Serverless::Function schema, and its strict decoder rejects unknown fields"},
	{"VerificationApi", "GatewayResponses", "typed map[string]string in goformation, while SAM's values are objects"},
}

// envParameter maps each environment variable that comes straight from a
// parameter to that parameter.
var envParameter = map[string]string{
	"CHANNELS":                 "Channels",
	"EMAIL_SENDER":             "EmailSender",
	"SMTP_URL_SECRET_ARN":      "SmtpUrlSecretArn",
	"EMAIL_FROM":               "EmailFrom",
	"SES_CONFIGURATION_SET":    "SesConfigurationSet",
	"SMS_SENDER_ID":            "SmsSenderId",
	"WEBOTP_DOMAIN":            "WebOtpDomain",
	"ANDROID_APP_HASH":         "AndroidAppHash",
	"SMS_SIGNATURE":            "SmsSignature",
	"CODE_TTL_SECONDS":         "CodeTtlSeconds",
	"RESEND_COOLDOWN_SECONDS":  "ResendCooldownSeconds",
	"IP_HOURLY_LIMIT":          "IpHourlyLimit",
	"TARGET_DAILY_LIMIT":       "TargetDailyLimit",
	"CAPTCHA_IP_THRESHOLD":     "CaptchaIpThreshold",
	"CAPTCHA_TARGET_THRESHOLD": "CaptchaTargetThreshold",
	"MAX_VERIFY_ATTEMPTS":      "MaxVerifyAttempts",
	"VERIFY_IP_HOURLY_LIMIT":   "VerifyIpHourlyLimit",
	"CAPTCHA_IP_HOURLY_LIMIT":  "CaptchaIpHourlyLimit",
	"CAPTCHA_MAX_ATTEMPTS":     "CaptchaMaxAttempts",
	"CAPTCHA_TOKEN_USES":       "CaptchaTokenUses",
	"ALLOWED_PHONE_REGIONS":    "AllowedPhoneRegions",
	"DEFAULT_LOCALE":           "DefaultLocale",
	"CAPTCHA_TTL_SECONDS":      "CaptchaTtlSeconds",
	"CAPTCHA_LENGTH":           "CaptchaLength",
	"TOKEN_ISSUER":             "TokenIssuer",
	"TOKEN_AUDIENCE":           "TokenAudience",
	"TOKEN_TTL_SECONDS":        "TokenTtlSeconds",
	"KEYS_REFRESH_SECONDS":     "KeysRefreshSeconds",
	"METRICS_NAMESPACE":        "MetricsNamespace",
	"CORS_ALLOWED_ORIGINS":     "CorsAllowedOrigins",
	"IPV6_PREFIX_BITS":         "Ipv6PrefixBits",
	"TRUSTED_PROXY_HOPS":       "TrustedProxyHops",
	"SMS_HOURLY_BUDGET":        "SmsHourlyBudget",
	"SMS_PREFIX_LENGTH":        "SmsPrefixLength",
	"PUMPING_UNVERIFIED_LIMIT": "PumpingUnverifiedLimit",
	"SMS_PREFIX_ALLOW":         "SmsPrefixAllow",
	"SMS_PREFIX_BLOCK":         "SmsPrefixBlock",
	"SMS_MAX_PRICE":            "SmsMaxPrice",
}

// A world is one deployment: a set of parameter overrides. The typed checks
// run in every world, with expectations derived from the parameters alone
// (never from the template's own Conditions, which are what is under test).
type world struct {
	name      string
	overrides map[string]any
}

var worlds = []world{
	{name: "defaults"},
	{
		name: "existing users table, SES with configuration set, WAF, alarm topic",
		overrides: map[string]any{
			"UsersTableName":                 "legacy-users",
			"EmailFrom":                      "Example <no-reply@example.com>",
			"SesIdentity":                    "example.com",
			"SesConfigurationSet":            "verifykit-events",
			"WebAclArn":                      "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/verifykit/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
			"AlarmTopicArn":                  "arn:aws:sns:us-east-1:123456789012:ops-alerts",
			"ReservedConcurrency":            7,
			"OutcomeUnknownAlarmThreshold":   12,
			"StoreUnavailableAlarmThreshold": 3,
			"StageName":                      "prod",
		},
	},
	{
		// Every environment parameter changed to a distinct value, so that
		// two swapped variables cannot pass.
		name: "email only over SMTP, every tunable changed",
		overrides: map[string]any{
			"Channels":               "email",
			"EmailSender":            "smtp",
			"SmtpUrlSecretArn":       "arn:aws:secretsmanager:us-east-1:123456789012:secret:verifykit-smtp-AbCdEf",
			"EmailFrom":              "no-reply@mail.example.com",
			"SesIdentity":            "mail.example.com",
			"SesConfigurationSet":    "unused-set",
			"SmsSenderId":            "Example",
			"WebOtpDomain":           "login.example.com",
			"AndroidAppHash":         "FA+9qCX9/Su",
			"SmsSignature":           "【Example】",
			"CodeTtlSeconds":         "900",
			"ResendCooldownSeconds":  "45",
			"IpHourlyLimit":          "20",
			"TargetDailyLimit":       "8",
			"CaptchaIpThreshold":     "2",
			"CaptchaTargetThreshold": "0",
			"MaxVerifyAttempts":      "4",
			"VerifyIpHourlyLimit":    "40",
			"CaptchaIpHourlyLimit":   "25",
			"CaptchaMaxAttempts":     "7",
			"CaptchaTokenUses":       "100",
			"CaptchaTtlSeconds":      "240",
			"CaptchaLength":          "6",
			"AllowedPhoneRegions":    "CN,HK",
			"DefaultLocale":          "en",
			"TokenIssuer":            "https://auth.example.com",
			"TokenAudience":          "signin.example.com",
			"TokenTtlSeconds":        "420",
			"KeysRefreshSeconds":     "120",
			"CorsAllowedOrigins":     "https://app.example.com,http://localhost:5173",
			"Ipv6PrefixBits":         "56",
			"TrustedProxyHops":       "1",
			"MetricsNamespace":       "Verifykit/Prod",
			"SmsHourlyBudget":        "5000",
			"SmsPrefixLength":        "9",
			"PumpingUnverifiedLimit": "30",
			"SmsPrefixAllow":         "86139,852",
			"SmsPrefixBlock":         "2347",
			"SmsMaxPrice":            "0.07",
		},
	},
	{
		name: "SMS only, SES identity given but unused",
		overrides: map[string]any{
			"Channels":    "sms",
			"SesIdentity": "example.com",
			"EmailFrom":   "no-reply@example.com",
		},
	},
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// rawTemplate returns template.yaml as plain data, short tags rewritten to
// their long form ({"Ref": "X"}, {"Fn::If": [...]}) and nothing evaluated.
func rawTemplate(t testing.TB) map[string]any {
	t.Helper()
	js, err := intrinsics.ProcessYAML(readFile(t, templateFile), &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func section(t testing.TB, doc map[string]any, name string) map[string]any {
	t.Helper()
	m, ok := doc[name].(map[string]any)
	if !ok {
		t.Fatalf("template has no %s section", name)
	}
	return m
}

// at walks maps by key; nil when a step is missing.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// scalar renders a parameter value or default the way CloudFormation passes
// it on (Ref of a Number parameter is a string too).
func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// parameterValues is every parameter's value in world w.
func parameterValues(t testing.TB, raw map[string]any, w world) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, def := range section(t, raw, "Parameters") {
		out[name] = scalar(at(def, "Default"))
	}
	for name, v := range w.overrides {
		if _, ok := out[name]; !ok {
			t.Fatalf("world %q overrides unknown parameter %s", w.name, name)
		}
		out[name] = scalar(v)
	}
	return out
}

// deployment is template.yaml as CloudFormation would see it in one world.
type deployment struct {
	world  world
	params map[string]string
	conds  map[string]bool
	tmpl   *cloudformation.Template
}

// exists says whether a resource with this Condition is created.
func (d *deployment) exists(condition string) bool {
	return condition == "" || d.conds[condition]
}

func parseWorld(t testing.TB, raw map[string]any, w world) *deployment {
	t.Helper()
	params := parameterValues(t, raw, w)
	conds := evalConditions(t, raw, params)
	var problems []string
	tmpl, err := goformation.ParseYAMLWithOptions(stripUntyped(t, readFile(t, templateFile)), &intrinsics.ProcessorOptions{
		IntrinsicHandlerOverrides: handlers(conds, &problems),
		ParameterOverrides:        w.overrides,
	})
	if err != nil {
		t.Fatalf("goformation: %v", err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	return &deployment{world: w, params: params, conds: conds, tmpl: tmpl}
}

// forEachWorld runs check as a subtest per world.
func forEachWorld(t *testing.T, check func(t *testing.T, d *deployment)) {
	raw := rawTemplate(t)
	for _, w := range worlds {
		t.Run(w.name, func(t *testing.T) {
			check(t, parseWorld(t, raw, w))
		})
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
