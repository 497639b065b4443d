// Command verification is the service's one binary: the Lambda function
// behind API Gateway when AWS_LAMBDA_RUNTIME_API is set, a local HTTP server
// otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/verifykit/verifykit/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	app.TuneGC(os.Getenv)
	cfg, err := app.Load(os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, app.Options{Stdout: os.Stdout})
	if err != nil {
		return err
	}
	if cfg.Lambda {
		lambda.StartWithOptions(a, lambda.WithContext(ctx))
		return nil
	}
	return a.Serve(ctx)
}
