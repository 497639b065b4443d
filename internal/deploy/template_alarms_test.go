package deploy

import (
	"slices"
	"testing"
)

// The template's alarms, under every world.

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
