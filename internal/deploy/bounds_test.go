package deploy

import (
	"context"
	"io"
	"regexp"
	"sort"
	"strconv"
	"testing"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
)

// unbounded stands for "no upper bound" in the searches below: no numeric
// setting means anything near it.
const unbounded = 10_000_000

// TestParameterBoundsMatchTheFunction: every numeric parameter that becomes
// an environment variable accepts exactly the values the function starts
// with (configuration and stores built, as a cold start does) from its
// smallest to its largest. A parameter allowing more would deploy a stack
// whose every cold start fails (999999 slots once passed the template while
// the DynamoDB store holds 100); one allowing less would refuse a working
// setting. A setting the function leaves unbounded (a TTL) needs only a
// pattern that stops somewhere below.
func TestParameterBoundsMatchTheFunction(t *testing.T) {
	params := section(t, rawTemplate(t), "Parameters")
	envs := make([]string, 0, len(envParameter))
	for env := range envParameter {
		envs = append(envs, env)
	}
	sort.Strings(envs)
	key := apptest.SigningKeyPEM(t)
	checked := 0
	for _, env := range envs {
		p, _ := params[envParameter[env]].(map[string]any)
		pattern, _ := p["AllowedPattern"].(string)
		re := regexp.MustCompile(pattern)
		if pattern == "" || !re.MatchString("1") || re.MatchString("a") || re.MatchString("1,2") {
			continue // not a number (a list of number prefixes is not one either)
		}
		checked++
		t.Run(env, func(t *testing.T) {
			allowed := func(n int) bool { return re.MatchString(strconv.Itoa(n)) }
			starts := func(n int) bool { return startsWith(env, strconv.Itoa(n), key) }
			pLo, pHi := bounds(allowed)
			cLo, cHi := bounds(starts)
			// The pattern's set must be one run of numbers for bounds to
			// describe it.
			if allowed(pLo-1) || !allowed(pHi) || allowed(pHi+1) {
				t.Fatalf("pattern %q does not accept one range of numbers", pattern)
			}
			if pLo != cLo {
				t.Errorf("pattern %q allows from %d, the function from %d", pattern, pLo, cLo)
			}
			if cHi == unbounded {
				if pHi >= unbounded {
					t.Errorf("pattern %q has no upper bound", pattern)
				}
				return
			}
			if pHi != cHi {
				t.Errorf("pattern %q allows up to %d, the function starts with up to %d", pattern, pHi, cHi)
			}
		})
	}
	if checked < 8 {
		t.Fatalf("only %d numeric parameters found", checked)
	}
}

// bounds finds the smallest n in 0..1 and the largest n up to unbounded for
// which ok holds, assuming ok holds on one run of numbers.
func bounds(ok func(int) bool) (lo, hi int) {
	lo = 0
	if !ok(0) {
		lo = 1
	}
	if ok(unbounded) {
		return lo, unbounded
	}
	// ok(lo) holds, ok(unbounded) does not: binary search the edge.
	a, b := lo, unbounded
	for b-a > 1 {
		m := a + (b-a)/2
		if ok(m) {
			a = m
		} else {
			b = m
		}
	}
	return lo, a
}

// startsWith reports whether the function starts with env=value: the
// configuration loads and app.New builds everything a cold start does
// against a DynamoDB table (no call is made), with literal keys.
func startsWith(env, value, signingKey string) bool {
	vars := map[string]string{
		"VERIFICATION_TABLE": "verifications",
		"USERS_TABLE":        "users",
		"HMAC_KEY":           "dGVzdC1obWFjLWtleS10ZXN0LWhtYWMta2V5LXRlc3QtaG1hYw==",
		"SIGNING_KEY":        signingKey,
		env:                  value,
	}
	cfg, err := app.Load(func(k string) string { return vars[k] })
	if err != nil {
		return false
	}
	_, err = app.New(context.Background(), cfg, app.Options{AWSConfig: apptest.StaticAWS(), Stdout: io.Discard})
	return err == nil
}
