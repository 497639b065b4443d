// Package testenv gives integration tests the endpoints of the local
// stand-ins (DynamoDB Local, aws-ses-v2-local, Mailpit, the Lambda runtime
// emulator) that `make test` starts once per run, and of the CloudBase JS
// SDK it installs.
//
// `go test ./...` alone runs every unit test and skips the tests that need a
// service; `make test` sets every variable and REQUIRE_SERVICES=1, under which
// a missing variable fails the test instead of skipping it, so CI can never
// pass by skipping. LookPath applies the same rule to a program a test needs;
// FreeAddr and WaitDial are for tests that start a server of their own.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// The variables `make test` sets.
const (
	DynamoDB    = "TEST_DYNAMODB_ENDPOINT" // http://127.0.0.1:PORT of DynamoDB Local
	SES         = "TEST_SES_ENDPOINT"      // http://127.0.0.1:PORT of aws-ses-v2-local
	MailpitAPI  = "TEST_MAILPIT_API"       // http://127.0.0.1:PORT of Mailpit's HTTP API
	MailpitSMTP = "TEST_MAILPIT_SMTP"      // 127.0.0.1:PORT of Mailpit's SMTP server
	RIE         = "TEST_RIE_BIN"           // path of the aws-lambda-rie binary
	CloudBase   = "TEST_CLOUDBASE_SDK"     // tools/cloudbase with the CloudBase JS SDK installed
)

// Get returns the value of the service variable name, skipping the test when
// it is unset (or failing it when REQUIRE_SERVICES=1).
func Get(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if required() {
			t.Fatalf("%s is not set but REQUIRE_SERVICES=1: run the tests with `make test`", name)
		}
		t.Skipf("%s not set; `make test` starts the service and sets it", name)
	}
	return v
}

// LookPath returns the path of the program name, skipping the test when it
// is not installed (or failing it when REQUIRE_SERVICES=1).
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if required() {
			t.Fatalf("%s is not installed but REQUIRE_SERVICES=1 (scripts/standins.sh installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// required reports whether a missing service or program fails the test
// rather than skipping it: only REQUIRE_SERVICES=1, as `make test` sets.
func required() bool { return os.Getenv("REQUIRE_SERVICES") == "1" }
