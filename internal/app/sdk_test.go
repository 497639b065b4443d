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

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// TestCloudBaseSDK runs tools/cloudbase/sdk.test.js: the CloudBase JS SDK's
// own functions (@cloudbase/auth and @cloudbase/oauth, pinned in
// tools/cloudbase/package-lock.json, installed by `make test`) against two
// local servers in local mode, over real HTTP on loopback. Its cases are
// listed in that file; this test starts the servers, runs `node --test` and
// fails when a case fails or when none ran.
//
// VERIFYKIT_MULTIUSE_CAPTCHA=1 in the environment enables the case that
// sends a cached captcha_token again, which needs tokens that serve more
// than one send (CAPTCHA_TOKEN_USES).
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
	api := sdkServer(t, map[string]string{
		"CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0", "IP_HOURLY_LIMIT": "100",
		"DEV_USERS": "existing@example.com", "CORS_ALLOWED_ORIGINS": corsOrigin,
	})
	gated := sdkServer(t, map[string]string{
		"CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0", "IP_HOURLY_LIMIT": "100",
		"CAPTCHA_LENGTH": "4",
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", "sdk.test.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"VERIFYKIT_API_ORIGIN="+api,
		"VERIFYKIT_CAPTCHA_API_ORIGIN="+gated,
		"VERIFYKIT_CORS_ORIGIN="+corsOrigin,
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test sdk.test.js:\n%s", out)
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
	if counts["pass"] == 0 || counts["fail"] != 0 || counts["cancelled"] != 0 {
		t.Fatalf("node --test summary %v: want passes and no failure", counts)
	}
	if counts["skipped"] > 0 {
		t.Logf("%d SDK case(s) skipped (see the output above)", counts["skipped"])
	}
}

// sdkServer serves a local-mode service (memory store, outbox sender,
// /dev/outbox) with env on a loopback port and returns its origin.
func sdkServer(t *testing.T, env map[string]string) string {
	t.Helper()
	s := apptest.New(t, env)
	srv := httptest.NewServer(s.Handler)
	t.Cleanup(srv.Close)
	return srv.URL
}
