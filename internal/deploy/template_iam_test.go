package deploy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The function's IAM policy: inline statements, only the actions used, on
// the resources used.

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
