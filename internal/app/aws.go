package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger sends the AWS SDK's own log lines through the service's slog
// logger, as JSON lines like every other, instead of the SDK's default plain
// text on stderr. The SDK logs rarely (a retry's clock skew, a body it could
// not close); its WARN is a warning here and anything else debug. Request
// and response logging (ClientLogMode) stays off: a body names a person.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	l.log.Log(context.Background(), sdkLevel(c), fmt.Sprintf(format, v...), "source", "aws-sdk")
}

func sdkLevel(c logging.Classification) slog.Level {
	if c == logging.Warn {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}
