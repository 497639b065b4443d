package web_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/testenv"
)

// TestClientModule runs the client module's own tests (web/test, Node's test
// runner) against the real local server binary: one server with the captcha
// gate off, one that asks for a captcha from an IP's second send, and one
// like it whose captcha tokens serve one send each.
func TestClientModule(t *testing.T) {
	node := testenv.LookPath(t, "node")
	bin := buildServer(t)
	plain := startServer(t, bin, map[string]string{"CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0"})
	gated := startServer(t, bin, map[string]string{"CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0"})
	oneUse := startServer(t, bin, map[string]string{"CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0", "CAPTCHA_TOKEN_USES": "1"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "test/")
	cmd.Env = append(os.Environ(), "VERIFYKIT_URL="+plain, "VERIFYKIT_CAPTCHA_URL="+gated, "VERIFYKIT_ONE_USE_URL="+oneUse, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// buildServer builds the service's binary, as `make run` runs it.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "verification")
	cmd := exec.Command("go", "build", "-o", bin, "./functions/verification")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer runs the local server on a free loopback port and returns its
// URL once it accepts connections (it listens and serves in one step,
// http.Server.ListenAndServe).
func startServer(t *testing.T, bin string, env map[string]string) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ADDR="+addr, "AWS_LAMBDA_RUNTIME_API=", "VERIFICATION_TABLE=", "USERS_TABLE=")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		if t.Failed() {
			t.Logf("server %s log:\n%s", addr, logs.String())
		}
	})
	url := "http://" + addr
	switch err := testenv.WaitDial(addr, 15*time.Second, done); {
	case errors.Is(err, testenv.ErrExited):
		t.Fatalf("server %s exited at start", url)
	case err != nil:
		t.Fatalf("server %s did not answer", url)
	}
	return url
}
