package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
	"gopkg.in/yaml.v3"
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

// evalConditions evaluates the template's Conditions section for the given
// parameter values: Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition and Ref.
func evalConditions(t testing.TB, raw map[string]any, params map[string]string) map[string]bool {
	t.Helper()
	defs, _ := raw["Conditions"].(map[string]any)
	out := map[string]bool{}
	var cond func(name string, depth int) bool
	var value func(v any) string
	var eval func(v any, depth int) bool
	value = func(v any) string {
		if m, ok := v.(map[string]any); ok {
			if ref, ok := m["Ref"].(string); ok && len(m) == 1 {
				p, ok := params[ref]
				if !ok {
					t.Fatalf("condition refers to %s, not a parameter", ref)
				}
				return p
			}
			t.Fatalf("condition operand %v: only literals and Ref to parameters are evaluated", v)
		}
		return scalar(v)
	}
	eval = func(v any, depth int) bool {
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			t.Fatalf("condition expression %#v is not one intrinsic (the short tag !Condition is not understood by goformation; write {Condition: Name})", v)
		}
		for fn, arg := range m {
			args, _ := arg.([]any)
			switch fn {
			case "Fn::Equals":
				if len(args) != 2 {
					t.Fatalf("Fn::Equals needs 2 operands: %v", arg)
				}
				return value(args[0]) == value(args[1])
			case "Fn::Not":
				if len(args) != 1 {
					t.Fatalf("Fn::Not needs 1 operand: %v", arg)
				}
				return !eval(args[0], depth+1)
			case "Fn::And", "Fn::Or":
				if len(args) < 2 || len(args) > 10 {
					t.Fatalf("%s needs 2 to 10 operands: %v", fn, arg)
				}
				and := fn == "Fn::And"
				for _, a := range args {
					if eval(a, depth+1) != and {
						return !and
					}
				}
				return and
			case "Condition":
				name, _ := arg.(string)
				return cond(name, depth+1)
			}
			t.Fatalf("unsupported condition function %s", fn)
		}
		return false
	}
	cond = func(name string, depth int) bool {
		if depth > 20 {
			t.Fatalf("condition %s: cycle", name)
		}
		if v, ok := out[name]; ok {
			return v
		}
		def, ok := defs[name]
		if !ok {
			t.Fatalf("unknown condition %s", name)
		}
		v := eval(def, depth)
		out[name] = v
		return v
	}
	for name := range defs {
		cond(name, 0)
	}
	return out
}

// stripUntyped removes untypedProperties from the YAML, keeping every tag.
func stripUntyped(t testing.TB, data []byte) []byte {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	child := func(n *yaml.Node, key string) (*yaml.Node, int) {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil, -1
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				return n.Content[i+1], i
			}
		}
		return nil, -1
	}
	for _, u := range untypedProperties {
		res, _ := child(root.Content[0], "Resources")
		res, _ = child(res, u.resource)
		props, _ := child(res, "Properties")
		_, i := child(props, u.property)
		if i < 0 {
			t.Fatalf("%s has no %s: update untypedProperties (stripped because it is %s)", u.resource, u.property, u.why)
		}
		props.Content = slices.Delete(props.Content, i, i+2)
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var subVariable = regexp.MustCompile(`\$\{([^}]+)\}`)

// handlers are the intrinsic overrides of the typed parse. Problems they
// meet (an Fn::If on an unknown condition) are appended to problems.
func handlers(conds map[string]bool, problems *[]string) map[string]intrinsics.IntrinsicHandler {
	ref := func(name string, input any, tmpl any) any {
		s, _ := input.(string)
		switch s {
		case "AWS::NoValue":
			return nil
		case "AWS::Partition":
			return "aws"
		case "AWS::URLSuffix":
			return "amazonaws.com"
		}
		if v := intrinsics.Ref(name, input, tmpl); v != nil {
			return v
		}
		return refPlaceholder(s)
	}
	getAtt := func(name string, input any, tmpl any) any {
		switch v := input.(type) {
		case string:
			return getAttPlaceholder(v)
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = scalar(p)
			}
			return getAttPlaceholder(strings.Join(parts, "."))
		}
		*problems = append(*problems, fmt.Sprintf("malformed Fn::GetAtt %v", input))
		return nil
	}
	sub := func(name string, input any, tmpl any) any {
		var s string
		vars := map[string]any{}
		switch v := input.(type) {
		case string:
			s = v
		case []any:
			if len(v) != 2 {
				*problems = append(*problems, fmt.Sprintf("malformed Fn::Sub %v", input))
				return nil
			}
			s, _ = v[0].(string)
			vars, _ = v[1].(map[string]any)
		}
		return subVariable.ReplaceAllStringFunc(s, func(m string) string {
			v := m[2 : len(m)-1]
			if lit, ok := strings.CutPrefix(v, "!"); ok {
				return "${" + lit + "}"
			}
			if x, ok := vars[v]; ok {
				return scalar(x)
			}
			if strings.Contains(v, ".") {
				return getAttPlaceholder(v)
			}
			return scalar(ref("Ref", v, tmpl))
		})
	}
	fnIf := func(name string, input any, tmpl any) any {
		args, _ := input.([]any)
		if len(args) != 3 {
			*problems = append(*problems, fmt.Sprintf("malformed Fn::If %v", input))
			return nil
		}
		c, _ := args[0].(string)
		v, ok := conds[c]
		if !ok {
			*problems = append(*problems, fmt.Sprintf("Fn::If on unknown condition %q", c))
			return nil
		}
		if v {
			return args[1]
		}
		return args[2]
	}
	return map[string]intrinsics.IntrinsicHandler{
		"Ref":        ref,
		"Fn::GetAtt": getAtt,
		"Fn::Sub":    sub,
		"Fn::If":     fnIf,
	}
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

func TestTables(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		tests := []struct {
			name, key, ttl, condition string
			created                   bool
		}{
			{name: "VerificationTable", key: "pk", ttl: "ttl", created: true},
			{name: "UsersTable", key: "identity", condition: "CreateUsersTable", created: d.params["UsersTableName"] == ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tbl, err := d.tmpl.GetDynamoDBTableWithName(tt.name)
				if err != nil {
					t.Fatal(err)
				}
				if got := tbl.AWSCloudFormationCondition; got != tt.condition {
					t.Errorf("Condition = %q, want %q", got, tt.condition)
				}
				if got := d.exists(tbl.AWSCloudFormationCondition); got != tt.created {
					t.Errorf("created = %v, want %v (UsersTableName=%q)", got, tt.created, d.params["UsersTableName"])
				}
				if got := deref(tbl.BillingMode); got != "PAY_PER_REQUEST" {
					t.Errorf("BillingMode = %q, want PAY_PER_REQUEST", got)
				}
				if len(tbl.KeySchema) != 1 || tbl.KeySchema[0].AttributeName != tt.key || tbl.KeySchema[0].KeyType != "HASH" {
					t.Errorf("KeySchema = %+v, want one HASH key %q", tbl.KeySchema, tt.key)
				}
				if len(tbl.AttributeDefinitions) != 1 || tbl.AttributeDefinitions[0].AttributeName != tt.key || tbl.AttributeDefinitions[0].AttributeType != "S" {
					t.Errorf("AttributeDefinitions = %+v, want %q of type S", tbl.AttributeDefinitions, tt.key)
				}
				if tbl.PointInTimeRecoverySpecification == nil || !deref(tbl.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled) {
					t.Error("point-in-time recovery is not enabled")
				}
				if tbl.SSESpecification == nil || !tbl.SSESpecification.SSEEnabled {
					t.Error("SSE is not enabled")
				}
				if tt.ttl == "" {
					if tbl.TimeToLiveSpecification != nil {
						t.Errorf("TTL = %+v, want none", tbl.TimeToLiveSpecification)
					}
				} else if ttl := tbl.TimeToLiveSpecification; ttl == nil {
					t.Errorf("no TTL, want attribute %q enabled", tt.ttl)
				} else if deref(ttl.AttributeName) != tt.ttl || !ttl.Enabled {
					t.Errorf("TTL = %q enabled %v, want %q enabled", deref(ttl.AttributeName), ttl.Enabled, tt.ttl)
				}
				if tbl.AWSCloudFormationDeletionPolicy != "Retain" || tbl.AWSCloudFormationUpdateReplacePolicy != "Retain" {
					t.Errorf("DeletionPolicy/UpdateReplacePolicy = %q/%q, want Retain/Retain", tbl.AWSCloudFormationDeletionPolicy, tbl.AWSCloudFormationUpdateReplacePolicy)
				}
				if len(tbl.GlobalSecondaryIndexes)+len(tbl.LocalSecondaryIndexes) != 0 {
					t.Error("unexpected secondary indexes")
				}
			})
		}
	})
}

func TestFunction(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		fns := d.tmpl.GetAllServerlessFunctionResources()
		if len(fns) != 1 {
			t.Errorf("%d functions, want exactly one (one warm pool for all routes)", len(fns))
		}
		fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
		if err != nil {
			t.Fatal(err)
		}
		if got := deref(fn.Runtime); got != "provided.al2023" {
			t.Errorf("Runtime = %q, want provided.al2023", got)
		}
		if !slices.Equal(fn.Architectures, []string{"arm64"}) {
			t.Errorf("Architectures = %v, want [arm64]", fn.Architectures)
		}
		if got := deref(fn.Handler); got != "bootstrap" {
			t.Errorf("Handler = %q, want bootstrap", got)
		}
		if fn.CodeUri == nil || deref(fn.CodeUri.String) != "." {
			t.Errorf("CodeUri = %+v, want \".\" (the Makefile builds from the module root)", fn.CodeUri)
		}
		if got := fn.AWSCloudFormationMetadata["BuildMethod"]; got != "makefile" {
			t.Errorf("Metadata.BuildMethod = %v, want makefile", got)
		}
		if got := deref(fn.Timeout); got < 10 || got > 29 {
			t.Errorf("Timeout = %d, want 10..29 s (two provider attempts of 3 s plus DynamoDB, inside API Gateway's 29 s)", got)
		}
		if got := deref(fn.MemorySize); got < 128 {
			t.Errorf("MemorySize = %d, want at least 128", got)
		}
		want, _ := strconv.Atoi(d.params["ReservedConcurrency"])
		if got := deref(fn.ReservedConcurrentExecutions); got != want || want < 1 {
			t.Errorf("ReservedConcurrentExecutions = %d, want the ReservedConcurrency parameter (%d)", got, want)
		}
		if fn.Role != nil {
			t.Errorf("Role = %q: the function must get SAM's role with the inline policies", *fn.Role)
		}
	})
}

func TestEnvironment(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
		if err != nil {
			t.Fatal(err)
		}
		if fn.Environment == nil {
			t.Fatal("no Environment")
		}
		usersTable := d.params["UsersTableName"]
		if usersTable == "" {
			usersTable = refPlaceholder("UsersTable")
		}
		want := map[string]string{
			"VERIFICATION_TABLE": refPlaceholder("VerificationTable"),
			"USERS_TABLE":        usersTable,
			"SMS_SENDER":         "sns",
			"KEYS_SECRET_ARN":    refPlaceholder("KeysSecret"),
		}
		for env, param := range envParameter {
			want[env] = d.params[param]
		}
		got := fn.Environment.Variables
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if v, ok := got[name]; !ok {
				t.Errorf("%s missing", name)
			} else if v != want[name] {
				t.Errorf("%s = %q, want %q", name, v, want[name])
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("unexpected variable %s", name)
			}
		}
		for _, forbidden := range []string{"HMAC_KEY", "SIGNING_KEY", "SMTP_URL", "DEV_USERS", "ADDR"} {
			if _, ok := got[forbidden]; ok {
				t.Errorf("%s is set: secrets come from Secrets Manager, and local-only settings stay local", forbidden)
			}
		}
	})
}

// TestWorldsChangeEveryTunable keeps the "every tunable changed" world honest:
// its values must be pairwise distinct or swapped variables would pass.
func TestWorldsChangeEveryTunable(t *testing.T) {
	raw := rawTemplate(t)
	params := parameterValues(t, raw, worlds[2])
	seen := map[string]string{}
	for env, param := range envParameter {
		if _, ok := worlds[2].overrides[param]; !ok {
			t.Errorf("world %q does not override %s", worlds[2].name, param)
		}
		if other, dup := seen[params[param]]; dup {
			t.Errorf("%s and %s both %q in world %q", env, other, params[param], worlds[2].name)
		}
		seen[params[param]] = env
	}
}

// routes are the API's methods and paths; the ANY entries on known paths
// send wrong methods to the function (method_not_allowed), the proxy sends
// unknown paths (not_found).
var routes = []string{
	"POST /auth/v1/verification",
	"POST /auth/v1/verification/verify",
	"POST /auth/v1/captcha/data",
	"POST /auth/v1/captcha/data/verify",
	"GET /auth/v1/.well-known/jwks.json",
	"ANY /auth/v1/verification",
	"ANY /auth/v1/verification/verify",
	"ANY /auth/v1/captcha/data",
	"ANY /auth/v1/captcha/data/verify",
	"ANY /auth/v1/.well-known/jwks.json",
	"ANY /{proxy+}",
}

func TestRoutes(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for name, ev := range fn.Events {
			if ev.Type != "Api" {
				t.Errorf("event %s: Type = %q, want Api (the REST API)", name, ev.Type)
				continue
			}
			// A Type: Api event decodes into both ApiEvent and HttpApiEvent.
			if ev.Properties == nil || ev.Properties.ApiEvent == nil {
				t.Errorf("event %s: no Api properties", name)
				continue
			}
			api := ev.Properties.ApiEvent
			if got := deref(api.RestApiId); got != refPlaceholder("VerificationApi") {
				t.Errorf("event %s: RestApiId = %q, want the explicit VerificationApi (not SAM's implicit API)", name, got)
			}
			got = append(got, strings.ToUpper(api.Method)+" "+api.Path)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(routes))
		if !slices.Equal(got, want) {
			t.Errorf("routes:\n got %q\nwant %q", got, want)
		}
	})
}

func TestAPI(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		apis := d.tmpl.GetAllServerlessApiResources()
		if len(apis) != 1 || len(d.tmpl.GetAllServerlessHttpApiResources()) != 0 {
			t.Errorf("want exactly one AWS::Serverless::Api and no HttpApi, got %d and %d", len(apis), len(d.tmpl.GetAllServerlessHttpApiResources()))
		}
		api, err := d.tmpl.GetServerlessApiWithName("VerificationApi")
		if err != nil {
			t.Fatal(err)
		}
		if api.StageName != d.params["StageName"] {
			t.Errorf("StageName = %q, want the StageName parameter (%q)", api.StageName, d.params["StageName"])
		}
		if api.OpenApiVersion == nil {
			t.Error("OpenApiVersion unset: SAM then also creates a stage named \"Stage\"")
		}
		if api.EndpointConfiguration == nil || deref(api.EndpointConfiguration.Type) != "REGIONAL" {
			t.Errorf("EndpointConfiguration = %+v, want REGIONAL", api.EndpointConfiguration)
		}
		if len(api.MethodSettings) != 1 {
			t.Fatalf("MethodSettings = %v, want one stage-wide entry", api.MethodSettings)
		}
		ms, _ := api.MethodSettings[0].(map[string]any)
		want := map[string]string{
			"ResourcePath":         "/*",
			"HttpMethod":           "*",
			"ThrottlingRateLimit":  d.params["ApiThrottlingRateLimit"],
			"ThrottlingBurstLimit": d.params["ApiThrottlingBurstLimit"],
		}
		for k, v := range want {
			if got := scalar(ms[k]); got != v {
				t.Errorf("MethodSettings.%s = %q, want %q", k, got, v)
			}
		}
	})
}

func TestWAF(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		assoc, err := d.tmpl.GetWAFv2WebACLAssociationWithName("VerificationApiWebAclAssociation")
		if err != nil {
			t.Fatal(err)
		}
		if assoc.AWSCloudFormationCondition == "" {
			t.Fatal("the WebACL association has no Condition: it must exist only when WebAclArn is given")
		}
		if got, want := d.exists(assoc.AWSCloudFormationCondition), d.params["WebAclArn"] != ""; got != want {
			t.Errorf("association created = %v with WebAclArn=%q, want %v", got, d.params["WebAclArn"], want)
		}
		if assoc.WebACLArn != d.params["WebAclArn"] {
			t.Errorf("WebACLArn = %q, want the WebAclArn parameter", assoc.WebACLArn)
		}
		prefix := "arn:aws:apigateway:" + region + "::/restapis/" + refPlaceholder("VerificationApi") + "/stages/"
		stage, ok := strings.CutPrefix(assoc.ResourceArn, prefix)
		switch {
		case !ok:
			t.Errorf("ResourceArn = %q, want prefix %q", assoc.ResourceArn, prefix)
		case stage == getAttPlaceholder("VerificationApi.Stage"):
			// SAM's ${Api.Stage} reference: names the generated stage and
			// depends on it.
		case stage == d.params["StageName"]:
			// A literal stage name needs an explicit dependency on the stage
			// SAM generates, or the association races it.
			if !slices.Contains(assoc.AWSCloudFormationDependsOn, "VerificationApiStage") {
				t.Errorf("ResourceArn names the stage literally but DependsOn = %v lacks VerificationApiStage", assoc.AWSCloudFormationDependsOn)
			}
		default:
			t.Errorf("ResourceArn stage = %q, want ${VerificationApi.Stage} or the StageName parameter", stage)
		}
	})
}

// statement is one IAM statement, Fn::If branches already taken and
// AWS::NoValue entries dropped.
type statement struct {
	sid, effect        string
	actions, resources []string
	unexpectedElements []string
}

// stringList reads an IAM element that may be one string or a list.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if x != nil { // AWS::NoValue
				out = append(out, scalar(x))
			}
		}
		return out
	}
	return nil
}

func functionStatements(t *testing.T, d *deployment) []statement {
	t.Helper()
	fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
	if err != nil {
		t.Fatal(err)
	}
	if fn.Policies == nil || fn.Policies.IAMPolicyDocumentArray == nil {
		t.Fatal("Policies is not a list of inline policy documents")
	}
	var out []statement
	for _, doc := range *fn.Policies.IAMPolicyDocumentArray {
		for _, raw := range doc.Statement {
			if raw == nil { // AWS::NoValue
				continue
			}
			m, ok := raw.(map[string]any)
			if !ok {
				t.Errorf("statement %v is not an object", raw)
				continue
			}
			s := statement{
				sid:       scalar(m["Sid"]),
				effect:    scalar(m["Effect"]),
				actions:   stringList(m["Action"]),
				resources: stringList(m["Resource"]),
			}
			for k := range m {
				switch k {
				case "Sid", "Effect", "Action", "Resource":
				default:
					s.unexpectedElements = append(s.unexpectedElements, k)
				}
			}
			out = append(out, s)
		}
	}
	return out
}

func TestIAM(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		p := d.params
		arn := func(service, resource string) string {
			return "arn:aws:" + service + ":" + region + ":" + accountID + ":" + resource
		}
		usersARN := getAttPlaceholder("UsersTable.Arn")
		if p["UsersTableName"] != "" {
			usersARN = arn("dynamodb", "table/"+p["UsersTableName"])
		}
		smsOn := p["Channels"] != "email"
		emailOn := p["Channels"] != "sms"

		// resource -> actions the function may perform on it. The DynamoDB
		// actions are the ones the service's calls need, as the app's
		// TestDynamoDBActions records them through every kind of request.
		tables := dynamoActions(t)
		allow := map[string][]string{
			getAttPlaceholder("VerificationTable.Arn"): tables["VerificationTable"],
			usersARN:                     tables["UsersTable"],
			refPlaceholder("KeysSecret"): {"secretsmanager:GetSecretValue"},
		}
		deny := map[string][]string{}
		if smsOn {
			// Direct SMS has no ARN; the Deny keeps topics and endpoints out.
			allow["*"] = []string{"sns:Publish"}
			deny["arn:aws:sns:*:*:*"] = []string{"sns:Publish"}
		}
		if emailOn && p["EmailSender"] == "ses" && p["SesIdentity"] != "" {
			allow[arn("ses", "identity/"+p["SesIdentity"])] = []string{"ses:SendEmail"}
			if p["SesConfigurationSet"] != "" {
				allow[arn("ses", "configuration-set/"+p["SesConfigurationSet"])] = []string{"ses:SendEmail"}
			}
		}
		if emailOn && p["EmailSender"] == "smtp" && p["SmtpUrlSecretArn"] != "" {
			allow[p["SmtpUrlSecretArn"]] = []string{"secretsmanager:GetSecretValue"}
		}

		gotAllow, gotDeny := map[string][]string{}, map[string][]string{}
		for _, s := range functionStatements(t, d) {
			if len(s.unexpectedElements) > 0 {
				t.Errorf("statement %s: unexpected elements %v (no NotAction, NotResource or Principal)", s.sid, s.unexpectedElements)
			}
			if len(s.actions) == 0 || len(s.resources) == 0 {
				t.Errorf("statement %s: actions %v, resources %v: both required", s.sid, s.actions, s.resources)
			}
			for _, a := range s.actions {
				if strings.Contains(a, "*") {
					t.Errorf("statement %s: wildcard action %q", s.sid, a)
				}
			}
			var into map[string][]string
			switch s.effect {
			case "Allow":
				into = gotAllow
			case "Deny":
				into = gotDeny
			default:
				t.Errorf("statement %s: Effect %q", s.sid, s.effect)
				continue
			}
			for _, r := range s.resources {
				for _, a := range s.actions {
					if !slices.Contains(into[r], a) {
						into[r] = append(into[r], a)
					}
				}
			}
		}
		compare := func(kind string, got, want map[string][]string) {
			for r, acts := range got {
				slices.Sort(acts)
				if w, ok := want[r]; !ok {
					t.Errorf("%s %v on %q: not expected", kind, acts, r)
				} else if !slices.Equal(acts, slices.Sorted(slices.Values(w))) {
					t.Errorf("%s on %q = %v, want %v", kind, r, acts, w)
				}
			}
			for r, w := range want {
				if _, ok := got[r]; !ok {
					t.Errorf("%s %v on %q missing", kind, w, r)
				}
			}
		}
		compare("Allow", gotAllow, allow)
		compare("Deny", gotDeny, deny)
	})
}

// dynamoActions reads the IAM actions the service's DynamoDB calls need, per
// table: the list internal/app's TestDynamoDBActions checks against the
// calls the service makes through every kind of request.
func dynamoActions(t *testing.T) map[string][]string {
	t.Helper()
	var m map[string][]string
	if err := json.Unmarshal(readFile(t, "testdata/dynamodb-actions.json"), &m); err != nil {
		t.Fatal(err)
	}
	if len(m["VerificationTable"]) == 0 || len(m["UsersTable"]) == 0 || len(m) != 2 {
		t.Fatalf("dynamodb-actions.json: %v, want actions for VerificationTable and UsersTable", m)
	}
	return m
}

func TestAlarms(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		p := d.params
		service := []string{"Service=verifykit"}
		function := []string{"FunctionName=" + refPlaceholder("VerificationFunction")}
		tests := []struct {
			name, namespace, metric, statistic, threshold string
			dimensions                                    []string
		}{
			{"ProviderFailuresAlarm", p["MetricsNamespace"], "ProviderFailures", "Sum", p["ProviderFailureAlarmThreshold"], service},
			{"SendsRefusedAlarm", p["MetricsNamespace"], "SendsRefused", "Sum", p["RefusalAlarmThreshold"], service},
			{"DeliveryOutcomeUnknownAlarm", p["MetricsNamespace"], "DeliveryOutcomeUnknown", "Sum", p["OutcomeUnknownAlarmThreshold"], service},
			{"StoreUnavailableAlarm", p["MetricsNamespace"], "StoreUnavailable", "Sum", p["StoreUnavailableAlarmThreshold"], service},
			{"BreakerTripsAlarm", p["MetricsNamespace"], "BreakerTrips", "Sum", "1", service},
			{"SmsBudgetExhaustedAlarm", p["MetricsNamespace"], "SMSBudgetExhausted", "Sum", "1", service},
			{"SmsSpendAlarm", "AWS/SNS", "SMSMonthToDateSpentUSD", "Maximum", p["SmsSpendAlarmUSD"], nil},
			{"FunctionThrottlesAlarm", "AWS/Lambda", "Throttles", "Sum", "1", function},
			{"FunctionErrorsAlarm", "AWS/Lambda", "Errors", "Sum", "1", function},
		}
		if got := len(d.tmpl.GetAllCloudWatchAlarmResources()); got != len(tests) {
			t.Errorf("%d alarms, want %d", got, len(tests))
		}
		var actions []string
		if p["AlarmTopicArn"] != "" {
			actions = []string{p["AlarmTopicArn"]}
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a, err := d.tmpl.GetCloudWatchAlarmWithName(tt.name)
				if err != nil {
					t.Fatal(err)
				}
				if got := deref(a.Namespace); got != tt.namespace {
					t.Errorf("Namespace = %q, want %q", got, tt.namespace)
				}
				if got := deref(a.MetricName); got != tt.metric {
					t.Errorf("MetricName = %q, want %q", got, tt.metric)
				}
				if got := deref(a.Statistic); got != tt.statistic {
					t.Errorf("Statistic = %q, want %q", got, tt.statistic)
				}
				var dims []string
				for _, dim := range a.Dimensions {
					dims = append(dims, dim.Name+"="+dim.Value)
				}
				if !slices.Equal(dims, tt.dimensions) {
					t.Errorf("Dimensions = %v, want %v", dims, tt.dimensions)
				}
				if got := deref(a.Period); got != 300 {
					t.Errorf("Period = %d, want 300", got)
				}
				if got := scalar(deref(a.Threshold)); got != tt.threshold {
					t.Errorf("Threshold = %s, want %s", got, tt.threshold)
				}
				if a.ComparisonOperator != "GreaterThanOrEqualToThreshold" || a.EvaluationPeriods != 1 {
					t.Errorf("ComparisonOperator/EvaluationPeriods = %s/%d, want GreaterThanOrEqualToThreshold/1", a.ComparisonOperator, a.EvaluationPeriods)
				}
				if got := deref(a.TreatMissingData); got != "notBreaching" {
					t.Errorf("TreatMissingData = %q, want notBreaching (no sends, no failures)", got)
				}
				if !slices.Equal(a.AlarmActions, actions) || !slices.Equal(a.OKActions, actions) {
					t.Errorf("AlarmActions/OKActions = %v/%v, want %v", a.AlarmActions, a.OKActions, actions)
				}
			})
		}
	})
}

func TestSecretAndLogs(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		s, err := d.tmpl.GetSecretsManagerSecretWithName("KeysSecret")
		if err != nil {
			t.Fatal(err)
		}
		if s.SecretString != nil {
			t.Error("KeysSecret has a literal SecretString: keys must be generated, never written down")
		}
		g := s.GenerateSecretString
		if g == nil {
			t.Fatal("KeysSecret has no GenerateSecretString")
		}
		if deref(g.SecretStringTemplate) != "{}" || deref(g.GenerateStringKey) != "master" {
			t.Errorf("secret JSON = template %q key %q, want {} and master", deref(g.SecretStringTemplate), deref(g.GenerateStringKey))
		}
		if deref(g.PasswordLength) < 64 || !deref(g.ExcludePunctuation) {
			t.Errorf("PasswordLength %d ExcludePunctuation %v, want >= 64 and true", deref(g.PasswordLength), deref(g.ExcludePunctuation))
		}
		lg, err := d.tmpl.GetLogsLogGroupWithName("VerificationLogGroup")
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(deref(lg.RetentionInDays)); got != d.params["LogRetentionDays"] {
			t.Errorf("RetentionInDays = %s, want the LogRetentionDays parameter (%s)", got, d.params["LogRetentionDays"])
		}
	})
}

func TestOutputs(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		base := "https://" + refPlaceholder("VerificationApi") + ".execute-api." + region + ".amazonaws.com/" + d.params["StageName"] + "/"
		users := d.params["UsersTableName"]
		if users == "" {
			users = refPlaceholder("UsersTable")
		}
		want := map[string]string{
			"ApiUrl":                base,
			"JwksUrl":               base + "auth/v1/.well-known/jwks.json",
			"VerificationTableName": refPlaceholder("VerificationTable"),
			"ActiveUsersTableName":  users,
			"FunctionName":          refPlaceholder("VerificationFunction"),
			"KeysSecretArn":         refPlaceholder("KeysSecret"),
		}
		for name, w := range want {
			o, ok := d.tmpl.Outputs[name]
			if !ok {
				t.Errorf("output %s missing", name)
				continue
			}
			if got := scalar(o.Value); got != w {
				t.Errorf("output %s = %q, want %q", name, got, w)
			}
		}
	})
}

// TestUntypedProperties checks, on the raw document, what goformation
// cannot type (see untypedProperties) and what it resolves away.
func TestUntypedProperties(t *testing.T) {
	raw := rawTemplate(t)
	fn := at(raw, "Resources", "VerificationFunction", "Properties")
	t.Run("LoggingConfig", func(t *testing.T) {
		lc, _ := at(fn, "LoggingConfig").(map[string]any)
		want := map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "LogGroup": map[string]any{"Ref": "VerificationLogGroup"}}
		for k, w := range want {
			if got, _ := json.Marshal(lc[k]); string(got) != mustJSON(w) {
				t.Errorf("LoggingConfig.%s = %s, want %s", k, got, mustJSON(w))
			}
		}
	})
	t.Run("ReservedConcurrentExecutions", func(t *testing.T) {
		if got := mustJSON(at(fn, "ReservedConcurrentExecutions")); got != `{"Ref":"ReservedConcurrency"}` {
			t.Errorf("ReservedConcurrentExecutions = %s, want !Ref ReservedConcurrency", got)
		}
	})
	t.Run("GatewayResponses", func(t *testing.T) {
		gr, _ := at(raw, "Resources", "VerificationApi", "Properties", "GatewayResponses").(map[string]any)
		tests := []struct {
			typ, status, errName string
			code                 float64
		}{
			{"DEFAULT_4XX", "", "invalid_request", 4000},
			{"DEFAULT_5XX", "", "internal_error", 5000},
			{"THROTTLED", "429", "rate_limit_exceeded", 4029},
			{"REQUEST_TOO_LARGE", "413", "payload_too_large", 4013},
			{"MISSING_AUTHENTICATION_TOKEN", "404", "not_found", 4040},
		}
		if len(gr) != len(tests) {
			t.Errorf("%d gateway responses, want %d", len(gr), len(tests))
		}
		for _, tt := range tests {
			t.Run(tt.typ, func(t *testing.T) {
				r, ok := gr[tt.typ].(map[string]any)
				if !ok {
					t.Fatal("missing")
				}
				for k := range r {
					if k != "StatusCode" && k != "ResponseParameters" && k != "ResponseTemplates" {
						t.Errorf("unknown property %s (SAM rejects it)", k)
					}
				}
				if got := scalar(r["StatusCode"]); got != tt.status {
					t.Errorf("StatusCode = %q, want %q", got, tt.status)
				}
				if got := at(r, "ResponseParameters", "Headers", "Content-Type"); got != "'application/json'" {
					t.Errorf("Content-Type header = %v, want 'application/json' (a quoted static value)", got)
				}
				body, _ := at(r, "ResponseTemplates", "application/json").(string)
				env := renderGatewayTemplate(t, body)
				if env["error"] != tt.errName || env["error_code"] != tt.code {
					t.Errorf("envelope = %v, want error %q error_code %v", env, tt.errName, tt.code)
				}
				if desc, _ := env["error_description"].(string); desc == "" {
					t.Error("error_description empty")
				}
				for k := range env {
					if k != "error" && k != "error_code" && k != "error_description" && k != "retry_after" {
						t.Errorf("envelope has extra field %q", k)
					}
				}
				if tt.status == "429" {
					ra := at(r, "ResponseParameters", "Headers", "Retry-After")
					if ra == nil || scalar(ra) != "'"+scalar(env["retry_after"])+"'" {
						t.Errorf("Retry-After header %v and retry_after %v must agree", ra, env["retry_after"])
					}
				}
			})
		}
	})
}

// renderGatewayTemplate renders an API Gateway response template the way API
// Gateway would, with a sample error message, and parses it as JSON.
func renderGatewayTemplate(t *testing.T, tmpl string) map[string]any {
	t.Helper()
	if tmpl == "" {
		t.Fatal("no application/json response template")
	}
	// $context.error.messageString is already a quoted JSON string.
	s := strings.ReplaceAll(tmpl, "$context.error.messageString", `"Sample \"message\""`)
	if strings.Contains(s, "$") {
		t.Errorf("template %q uses variables this check does not render", tmpl)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(s), &env); err != nil {
		t.Fatalf("template %q does not render to JSON: %v", tmpl, err)
	}
	return env
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestNoGlobals(t *testing.T) {
	if g, ok := rawTemplate(t)["Globals"]; ok {
		t.Errorf("Globals = %v: goformation does not merge them, put settings on the resources", g)
	}
}

// TestPoliciesAreInline rejects SAM policy templates and managed policy
// names: goformation loses the former, and both grant more than needed.
func TestPoliciesAreInline(t *testing.T) {
	raw := rawTemplate(t)
	for name, res := range section(t, raw, "Resources") {
		pols, ok := at(res, "Properties", "Policies").([]any)
		if !ok {
			if at(res, "Properties", "Policies") != nil {
				t.Errorf("%s: Policies is not a list", name)
			}
			continue
		}
		for i, p := range pols {
			m, ok := p.(map[string]any)
			if _, hasStatement := m["Statement"]; !ok || !hasStatement || len(m) != 1 {
				t.Errorf("%s: Policies[%d] = %v, want an inline {Statement: [...]}", name, i, p)
			}
		}
	}
}

// TestNoWildcardActions walks every statement anywhere in the template,
// through both branches of every Fn::If.
func TestNoWildcardActions(t *testing.T) {
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "Action" || k == "NotAction" {
					for _, a := range flattenStrings(x) {
						if strings.Contains(a, "*") {
							t.Errorf("%s.%s: wildcard action %q", path, k, a)
						}
					}
				}
				if k == "NotAction" || k == "NotResource" {
					t.Errorf("%s.%s: use explicit Action and Resource", path, k)
				}
				walk(x, path+"."+k)
			}
		case []any:
			for i, x := range v {
				walk(x, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(rawTemplate(t)["Resources"], "Resources")
}

func flattenStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, flattenStrings(x)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, flattenStrings(x)...)
		}
		return out
	}
	return nil
}

// pseudoParameters are the references CloudFormation defines itself.
var pseudoParameters = []string{
	"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
	"AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix",
}

// samReferable are the generated resources SAM lets a template reference as
// <Api>.Stage and <Api>.Deployment.
var samReferable = []string{"Stage", "Deployment"}

// TestReferences checks that every Ref, ${} in Fn::Sub, Fn::GetAtt,
// condition name and DependsOn resolves, and that every parameter and
// condition is used.
func TestReferences(t *testing.T) {
	raw := rawTemplate(t)
	params := section(t, raw, "Parameters")
	resources := section(t, raw, "Resources")
	conditions, _ := raw["Conditions"].(map[string]any)
	usedParams, usedConds := map[string]bool{}, map[string]bool{}

	checkRef := func(name, where string) {
		switch {
		case slices.Contains(pseudoParameters, name):
		case params[name] != nil:
			usedParams[name] = true
		case resources[name] != nil:
		default:
			t.Errorf("%s: reference to unknown %q", where, name)
		}
	}
	checkGetAtt := func(target, where string) {
		res, attr, ok := strings.Cut(target, ".")
		if !ok || attr == "" {
			t.Errorf("%s: malformed attribute reference %q", where, target)
			return
		}
		r, ok := resources[res].(map[string]any)
		if !ok {
			t.Errorf("%s: attribute of unknown resource %q", where, target)
			return
		}
		if r["Type"] == "AWS::Serverless::Api" && !slices.Contains(samReferable, attr) && attr != "RootResourceId" {
			t.Errorf("%s: %q is not an attribute of a SAM Api", where, target)
		}
	}
	checkCond := func(name, where string) {
		if _, ok := conditions[name]; !ok {
			t.Errorf("%s: unknown condition %q", where, name)
		}
		usedConds[name] = true
	}

	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case []any:
			for i, x := range v {
				walk(x, fmt.Sprintf("%s[%d]", path, i))
			}
		case map[string]any:
			if len(v) == 1 {
				for fn, arg := range v {
					switch fn {
					case "Ref":
						name, _ := arg.(string)
						checkRef(name, path)
						return
					case "Fn::GetAtt":
						switch a := arg.(type) {
						case string:
							checkGetAtt(a, path)
						case []any:
							checkGetAtt(strings.Join(flattenStrings(a), "."), path)
						}
						return
					case "Fn::Sub":
						var s string
						local := map[string]any{}
						switch a := arg.(type) {
						case string:
							s = a
						case []any:
							if len(a) == 2 {
								s, _ = a[0].(string)
								local, _ = a[1].(map[string]any)
								walk(a[1], path+".Fn::Sub")
							}
						}
						for _, m := range subVariable.FindAllStringSubmatch(s, -1) {
							name := m[1]
							if strings.HasPrefix(name, "!") || local[name] != nil {
								continue
							}
							if strings.Contains(name, ".") {
								checkGetAtt(name, path)
							} else {
								checkRef(name, path)
							}
						}
						return
					case "Fn::If":
						if a, ok := arg.([]any); ok && len(a) == 3 {
							name, _ := a[0].(string)
							checkCond(name, path)
							walk(a[1], path+".Fn::If[true]")
							walk(a[2], path+".Fn::If[false]")
						} else {
							t.Errorf("%s: malformed Fn::If", path)
						}
						return
					case "Condition":
						if name, ok := arg.(string); ok {
							checkCond(name, path)
							return
						}
					}
				}
			}
			for k, x := range v {
				walk(x, path+"."+k)
			}
		}
	}
	walk(raw["Conditions"], "Conditions")
	walk(raw["Outputs"], "Outputs")
	for name, res := range resources {
		r, _ := res.(map[string]any)
		if c, ok := r["Condition"].(string); ok {
			checkCond(c, "Resources."+name+".Condition")
		}
		for _, dep := range flattenStrings(r["DependsOn"]) {
			// SAM's generated API resources (VerificationApiStage, ...) are
			// not in the template but may be depended on.
			if resources[dep] == nil && !strings.HasPrefix(dep, "VerificationApi") {
				t.Errorf("Resources.%s.DependsOn: unknown resource %q", name, dep)
			}
		}
		walk(r["Properties"], "Resources."+name+".Properties")
	}
	for name := range params {
		if !usedParams[name] {
			t.Errorf("parameter %s is never used", name)
		}
	}
	for name := range conditions {
		if !usedConds[name] {
			t.Errorf("condition %s is never used", name)
		}
	}
}

// TestParameters checks that every parameter documents itself and that its
// default — and every value the worlds and samconfig.toml use — passes its
// own constraints, so the stack deploys with no overrides.
func TestParameters(t *testing.T) {
	raw := rawTemplate(t)
	params := section(t, raw, "Parameters")
	for _, name := range slices.Sorted(maps.Keys(params)) {
		t.Run(name, func(t *testing.T) {
			p, _ := params[name].(map[string]any)
			if typ := p["Type"]; typ != "String" && typ != "Number" {
				t.Errorf("Type = %v, want String or Number", typ)
			}
			if d, _ := p["Description"].(string); d == "" {
				t.Error("no Description")
			}
			def, ok := p["Default"]
			if !ok {
				t.Fatal("no Default: the stack must deploy without overrides")
			}
			if err := checkParameterValue(p, scalar(def)); err != nil {
				t.Errorf("Default %q: %v", scalar(def), err)
			}
			if p["Type"] == "String" && p["AllowedValues"] == nil && p["AllowedPattern"] == nil && p["MinLength"] == nil {
				t.Error("a String parameter needs AllowedValues, AllowedPattern or MinLength")
			}
			if p["Type"] == "Number" && p["AllowedValues"] == nil && p["MinValue"] == nil {
				t.Error("a Number parameter needs AllowedValues or MinValue")
			}
		})
	}
	for _, w := range worlds {
		for name, v := range w.overrides {
			p, _ := params[name].(map[string]any)
			if err := checkParameterValue(p, scalar(v)); err != nil {
				t.Errorf("world %q: %s=%q: %v", w.name, name, scalar(v), err)
			}
		}
	}
	// Values that must be refused.
	refused := []struct{ param, value string }{
		{"AllowedPhoneRegions", "cn"},
		{"AllowedPhoneRegions", "CN,"},
		{"DefaultLocale", "fr"},
		{"EmailSender", "sendgrid"},
		{"CodeTtlSeconds", "0"},
		{"CodeTtlSeconds", "1.5"},
		{"IpHourlyLimit", "-1"},
		{"VerifyIpHourlyLimit", "0"},
		{"VerifyIpHourlyLimit", "101"},
		{"CaptchaIpHourlyLimit", "101"},
		{"CaptchaMaxAttempts", "0"},
		{"CaptchaTokenUses", "101"},
		{"ReservedConcurrency", "0"},
		{"Channels", "sms,fax"},
		{"WebOtpDomain", "https://login.example.com"},
		{"AndroidAppHash", "FA+9qCX9VS"},
		{"SmsSignature", "【Example】\nsecond line"},
		{"WebOtpDomain", strings.Repeat("a", 37) + ".com"},
		{"SmsSignature", "【" + strings.Repeat("示", 15) + "】"},
		{"SmsHourlyBudget", "1000001"},
		{"SmsHourlyBudget", "-1"},
		{"SmsPrefixLength", "0"},
		{"SmsPrefixLength", "16"},
		{"SmsPrefixAllow", "+86138"},
		{"SmsPrefixBlock", "86138,"},
		{"SmsMaxPrice", "0"},
		{"SmsMaxPrice", "0.00"},
		{"SmsMaxPrice", "1e-2"},
		{"SmsMaxPrice", "101"},
	}
	for _, r := range refused {
		p, _ := params[r.param].(map[string]any)
		if p == nil {
			t.Errorf("parameter %s missing", r.param)
			continue
		}
		if checkParameterValue(p, r.value) == nil {
			t.Errorf("%s accepts %q", r.param, r.value)
		}
	}
}

// checkParameterValue applies CloudFormation's parameter constraints.
// AllowedPattern is matched against the whole value, as CloudFormation does.
func checkParameterValue(p map[string]any, v string) error {
	if allowed, ok := p["AllowedValues"].([]any); ok {
		var vals []string
		for _, a := range allowed {
			vals = append(vals, scalar(a))
		}
		if !slices.Contains(vals, v) {
			return fmt.Errorf("not one of %v", vals)
		}
	}
	if pat, ok := p["AllowedPattern"].(string); ok {
		re, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return fmt.Errorf("AllowedPattern %q: %v", pat, err)
		}
		if !re.MatchString(v) {
			return fmt.Errorf("does not match %q", pat)
		}
	}
	if n, ok := p["MinLength"].(float64); ok && float64(len(v)) < n {
		return fmt.Errorf("shorter than %v", n)
	}
	if n, ok := p["MaxLength"].(float64); ok && float64(utf8.RuneCountInString(v)) > n {
		return fmt.Errorf("longer than %v", n)
	}
	if p["Type"] == "Number" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		if m, ok := p["MinValue"].(float64); ok && f < m {
			return fmt.Errorf("below %v", m)
		}
		if m, ok := p["MaxValue"].(float64); ok && f > m {
			return fmt.Errorf("above %v", m)
		}
	}
	return nil
}
