package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/logging"
	"github.com/verifykit/verifykit/internal/verification"
)

// emittedMetrics runs the function's metrics writer over every kind of
// request outcome and returns the names of the metrics it writes, each with
// its dimension sets.
func emittedMetrics(t *testing.T) map[string][][]string {
	t.Helper()
	var buf bytes.Buffer
	m := logging.NewMetrics(&buf, "Verifykit", "verifykit")
	routes := []string{"/auth/v1/verification", "/auth/v1/verification/verify", "/auth/v1/captcha/data", "/auth/v1/captcha/data/verify"}
	outcomes := []string{"ok"}
	for _, k := range verification.Kinds() {
		outcomes = append(outcomes, string(k))
	}
	for _, route := range routes {
		for _, outcome := range outcomes {
			for _, unknown := range []bool{false, true} {
				m.Request(logging.RequestMetrics{Route: route, Outcome: outcome, OutcomeUnknown: unknown && outcome == "ok", Time: time.Unix(0, 0)})
			}
		}
	}
	// What only some requests carry: a channel and country (sends and
	// verifies by country), a refusal's reason (the spent SMS budget), and
	// the breaker's trips.
	m.Request(logging.RequestMetrics{Route: routes[0], Outcome: "ok", Channel: "sms", Country: "CN", Time: time.Unix(0, 0)})
	m.Request(logging.RequestMetrics{Route: routes[1], Outcome: "ok", Channel: "sms", Country: "CN", Time: time.Unix(0, 0)})
	m.Request(logging.RequestMetrics{Route: routes[0], Outcome: string(verification.KindRateLimitExceeded), Reason: verification.ReasonBudgetExhausted, Time: time.Unix(0, 0)})
	m.Breaker(verification.BreakerTransition{Prefix: "8613800", From: verification.Healthy, To: verification.Suspect}, "CN", time.Unix(0, 0))
	out := map[string][][]string{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var line struct {
			AWS struct {
				CloudWatchMetrics []struct {
					Dimensions [][]string
					Metrics    []struct{ Name string }
				}
			} `json:"_aws"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("metrics line %s: %v", sc.Text(), err)
		}
		// Every dimension set a metric is written with, over all lines.
		for _, d := range line.AWS.CloudWatchMetrics {
			for _, metric := range d.Metrics {
				for _, set := range d.Dimensions {
					if !slices.ContainsFunc(out[metric.Name], func(s []string) bool { return slices.Equal(s, set) }) {
						out[metric.Name] = append(out[metric.Name], set)
					}
				}
			}
		}
	}
	return out
}

// TestAlarmsWatchEmittedMetrics: an alarm on the function's namespace
// watches a metric the code really writes, with a dimension set it writes;
// otherwise it would watch nothing, forever "OK". Every alarm says what it
// counts and has a runbook line in docs/deploy.md.
func TestAlarmsWatchEmittedMetrics(t *testing.T) {
	emitted := emittedMetrics(t)
	for _, name := range []string{logging.MetricOutcomeUnknown, logging.MetricStoreUnavailable, logging.MetricProviderFailures, logging.MetricSendsRefused} {
		if _, ok := emitted[name]; !ok {
			t.Errorf("the code never writes %s", name)
		}
	}
	runbook := string(readFile(t, filepath.Join("..", "..", "docs", "deploy.md")))
	forEachWorld(t, func(t *testing.T, d *deployment) {
		ns := d.params["MetricsNamespace"]
		for name, a := range d.tmpl.GetAllCloudWatchAlarmResources() {
			if len(deref(a.AlarmDescription)) < 40 {
				t.Errorf("%s: AlarmDescription %q does not say what it counts", name, deref(a.AlarmDescription))
			}
			if !strings.Contains(runbook, "`"+name+"`") {
				t.Errorf("%s: no runbook line in docs/deploy.md", name)
			}
			if deref(a.Namespace) != ns {
				continue
			}
			dims, ok := emitted[deref(a.MetricName)]
			if !ok {
				t.Errorf("%s watches %s, which the code never writes", name, deref(a.MetricName))
				continue
			}
			var want []string
			for _, dim := range a.Dimensions {
				want = append(want, dim.Name)
			}
			found := false
			for _, set := range dims {
				found = found || strings.Join(set, ",") == strings.Join(want, ",")
			}
			if !found {
				t.Errorf("%s: dimensions %v, the code writes %v", name, want, dims)
			}
		}
	})
}
