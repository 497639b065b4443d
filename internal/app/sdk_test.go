package app_test

import (
	"bufio"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// TestCloudBaseSDK runs tools/cloudbase/sdk.test.js: the CloudBase JS SDK's
// own functions (@cloudbase/auth and @cloudbase/oauth, pinned in
// tools/cloudbase/package-lock.json, installed by `make test`) against three
// local servers in local mode, over real HTTP on loopback, once with the
// memory store and once with DynamoDB Local. Its cases are listed in that
// file; this test starts the servers, runs `node --test` and fails when a
// case fails or when none ran.
func TestCloudBaseSDK(t *testing.T) {
	dir := testenv.Get(t, testenv.CloudBase)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@cloudbase", "auth", "package.json")); err != nil {
		t.Fatalf("the CloudBase JS SDK is not installed in %s (scripts/standins.sh installs it): %v", dir, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	const corsOrigin = "http://app.example.test"
	plain := map[string]string{
		"CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0", "IP_HOURLY_LIMIT": "100",
		"CORS_ALLOWED_ORIGINS": corsOrigin,
	}
	gated := map[string]string{
		"CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0", "IP_HOURLY_LIMIT": "100",
		"CAPTCHA_LENGTH": "4",
	}
	// As gated, but a captcha token serves one accepted send: the case that
	// shows what the SDK does once its cached token is spent.
	singleUse := map[string]string{
		"CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0", "IP_HOURLY_LIMIT": "100",
		"CAPTCHA_LENGTH": "4", "CAPTCHA_TOKEN_USES": "1",
	}
	users := []string{"existing@example.com"}
	stores := []struct {
		name  string
		build func(t *testing.T, env map[string]string) *apptest.Service
	}{
		{"memory", func(t *testing.T, env map[string]string) *apptest.Service {
			e := map[string]string{"DEV_USERS": strings.Join(users, ",")}
			for k, v := range env {
				e[k] = v
			}
			return apptest.New(t, e)
		}},
		{"dynamodb", func(t *testing.T, env map[string]string) *apptest.Service {
			return apptest.NewDynamo(t, env, users, app.Options{})
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			api := serveHTTP(t, st.build(t, plain))
			captcha := serveHTTP(t, st.build(t, gated))
			single := serveHTTP(t, st.build(t, singleUse))
			runNodeTests(t, node, dir, "sdk.test.js",
				"VERIFYKIT_API_ORIGIN="+api,
				"VERIFYKIT_CAPTCHA_API_ORIGIN="+captcha,
				"VERIFYKIT_SINGLE_USE_CAPTCHA_API_ORIGIN="+single,
				"VERIFYKIT_CORS_ORIGIN="+corsOrigin,
			)
		})
	}
}

// runNodeTests runs `node --test file` in dir with env added, logs its TAP
// output, and fails unless some tests passed and none failed.
func runNodeTests(t *testing.T, node, dir, file string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test %s:\n%s", file, out)
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
	// TAP closes with "# pass N", "# fail N", "# skipped N" (node:test).
	counts := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	summary := regexp.MustCompile(`^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$`)
	for sc.Scan() {
		if m := summary.FindStringSubmatch(sc.Text()); m != nil {
			counts[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	if counts["pass"] == 0 || counts["fail"] != 0 || counts["cancelled"] != 0 || counts["skipped"] != 0 {
		t.Fatalf("node --test summary %v: want passes, and no case failed or skipped", counts)
	}
}

// serveHTTP serves s (local mode: outbox sender, /dev/outbox) on a loopback
// port and returns its origin.
func serveHTTP(t *testing.T, s *apptest.Service) string {
	t.Helper()
	srv := httptest.NewServer(s.Handler)
	t.Cleanup(srv.Close)
	return srv.URL
}
