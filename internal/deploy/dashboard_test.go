package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/verifykit/verifykit/internal/logging"
)

// nsPlaceholder stands for ${MetricsNamespace} in the dashboard's body.
const nsPlaceholder = "Verifykit-Test-Namespace"

// searchExpr reads the schema and metric name of a SEARCH expression:
// SEARCH('{"NS",Service,Country} MetricName="X"', 'Sum', 300).
var searchExpr = regexp.MustCompile(`SEARCH\('\{"([^"]+)",([A-Za-z,]+)\} MetricName="([A-Za-z]+)"'`)

// namedMetric is a metric an alarm or the dashboard asks for in the
// function's namespace, with the dimension names it asks for.
type namedMetric struct {
	where, name string
	dims        []string
}

// TestDashboardAndAlarmsNameEmittedMetrics checks that every metric of the
// function's namespace that an alarm or the dashboard names is one the code
// writes, with a dimension set the code writes it with: a typo or a renamed
// metric would otherwise leave a graph empty and an alarm silent forever.
func TestDashboardAndAlarmsNameEmittedMetrics(t *testing.T) {
	raw := rawTemplate(t)
	var named []namedMetric
	for name, r := range section(t, raw, "Resources") {
		switch at(r, "Type") {
		case "AWS::CloudWatch::Alarm":
			if mustJSON(at(r, "Properties", "Namespace")) != `{"Ref":"MetricsNamespace"}` {
				continue
			}
			m := namedMetric{where: name, name: scalar(at(r, "Properties", "MetricName"))}
			dims, _ := at(r, "Properties", "Dimensions").([]any)
			for _, d := range dims {
				m.dims = append(m.dims, scalar(at(d, "Name")))
			}
			named = append(named, m)
		case "AWS::CloudWatch::Dashboard":
			named = append(named, dashboardMetrics(t, name, at(r, "Properties", "DashboardBody"))...)
		}
	}

	emitted := emittedMetrics(t)
	seen := map[string]bool{}
	for _, m := range named {
		seen[m.name] = true
		sets := emitted[m.name]
		if sets == nil {
			t.Errorf("%s names metric %q, which the code never writes (emittedMetrics)", m.where, m.name)
			continue
		}
		if !slices.ContainsFunc(sets, func(s []string) bool { return slices.Equal(s, m.dims) }) {
			t.Errorf("%s asks for %s by %v; the code writes it by %v only", m.where, m.name, m.dims, sets)
		}
	}
	// What an operator must see at a glance.
	for _, want := range []string{
		logging.MetricSendsAccepted, logging.MetricVerifySucceeded, logging.MetricSendsRefused,
		logging.MetricBreakerTrips, logging.MetricSMSBudgetExhausted, logging.MetricProviderFailures, logging.MetricOutcomeUnknown,
	} {
		if !seen[want] {
			t.Errorf("neither the dashboard nor an alarm shows %s", want)
		}
	}
}

// dashboardMetrics reads the metrics a dashboard body names: plain metric
// rows ["NS", "Name", "Dim", "value", ..., {options}] and SEARCH expressions.
func dashboardMetrics(t *testing.T, resource string, body any) []namedMetric {
	t.Helper()
	sub, ok := at(body, "Fn::Sub").(string)
	if !ok {
		t.Fatalf("%s: DashboardBody is %s, want !Sub of the JSON", resource, mustJSON(body))
	}
	// The namespace and region are the only substitutions.
	js := strings.NewReplacer("${MetricsNamespace}", nsPlaceholder, "${AWS::Region}", region).Replace(sub)
	if strings.Contains(js, "${") {
		t.Fatalf("%s: DashboardBody substitutes more than the namespace and region", resource)
	}
	var doc struct {
		Widgets []struct {
			Properties struct {
				Title   string
				Metrics [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("%s: DashboardBody is not JSON: %v", resource, err)
	}
	var out []namedMetric
	for _, w := range doc.Widgets {
		where := resource + " " + w.Properties.Title
		if len(w.Properties.Metrics) == 0 {
			t.Errorf("%s: no metrics", where)
		}
		for _, row := range w.Properties.Metrics {
			if ns, ok := row[0].(string); ok {
				if ns != nsPlaceholder {
					continue // another service's metric
				}
				m := namedMetric{where: where, name: scalar(row[1])}
				for i := 2; i+1 < len(row); i += 2 {
					if d, ok := row[i].(string); ok {
						m.dims = append(m.dims, d)
					}
				}
				out = append(out, m)
				continue
			}
			expr, _ := at(row[0], "expression").(string)
			if !strings.Contains(expr, "SEARCH") {
				continue // metric math over the rows above
			}
			sm := searchExpr.FindStringSubmatch(expr)
			if sm == nil || sm[1] != nsPlaceholder {
				t.Errorf("%s: SEARCH expression %q not in the form this check reads", where, expr)
				continue
			}
			out = append(out, namedMetric{where: where, name: sm[3], dims: strings.Split(sm[2], ",")})
		}
	}
	return out
}
