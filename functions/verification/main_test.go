package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfigurationStopsStartUp runs the real binary: a bad value stops
// start-up with a non-zero exit and a message naming the variable.
func TestBadConfigurationStopsStartUp(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "verification")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, env := range [][]string{
		{"CODE_TTL_SECONDS=0"},
		{"ALLOWED_PHONE_REGIONS=CN,ZZ"},
		{"DEFAULT_LOCALE=fr"},
		{"CHANNELS=sms,fax"},
		// The outbox sender on a network address would publish codes.
		{"ADDR=0.0.0.0:0"},
	} {
		cmd := exec.Command(bin)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "ADDR=127.0.0.1:0"}, env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("%v: got %v, want a non-zero exit", env, err)
		}
		name := strings.SplitN(env[0], "=", 2)[0]
		if !strings.Contains(stderr.String(), name) {
			t.Fatalf("%v: message %q does not name %s", env, stderr.String(), name)
		}
	}
}
