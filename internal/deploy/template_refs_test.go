package deploy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// References and parameters: every Ref, GetAtt and Sub names something
// that exists, and every parameter's default and constraints agree.

func TestNoGlobals(t *testing.T) {
	if g, ok := rawTemplate(t)["Globals"]; ok {
		t.Errorf("Globals = %v: goformation does not merge them, put settings on the resources", g)
	}
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
