package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/smithy-go/logging"
)

// TestSDKLogger: the SDK's lines arrive as the service's JSON log lines,
// marked as the SDK's, its warnings as warnings and the rest as debug.
func TestSDKLogger(t *testing.T) {
	tests := []struct {
		name  string
		class logging.Classification
		level string
	}{
		{"warning", logging.Warn, "WARN"},
		{"debug", logging.Debug, "DEBUG"},
		{"unknown classification", logging.Classification("OTHER"), "DEBUG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := sdkLogger{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			l.Logf(tt.class, "retry %d of %s", 2, "GetItem")
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not one JSON line: %q", buf.String())
			}
			if line["level"] != tt.level || line["msg"] != "retry 2 of GetItem" || line["source"] != "aws-sdk" {
				t.Errorf("got %v, want level %s, msg %q, source aws-sdk", line, tt.level, "retry 2 of GetItem")
			}
		})
	}
}
