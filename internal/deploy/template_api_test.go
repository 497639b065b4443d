package deploy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The API: routes, stage settings, the WAF web ACL and the gateway responses.

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
