package app_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/token"
)

// secretsManagerFake answers GetSecretValue at the wire (JSON 1.1) with the
// secret it holds at the time, or with a 500 while failing is set, and
// counts the reads.
type secretsManagerFake struct {
	mu      sync.Mutex
	secret  string
	failing bool
	reads   int
}

func (f *secretsManagerFake) set(secret string, failing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secret, f.failing = secret, failing
}

func (f *secretsManagerFake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func (f *secretsManagerFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		http.Error(w, "unexpected", 400)
		return
	}
	f.reads++
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if f.failing {
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"__type":"InternalServiceError","message":"down"}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"ARN": "arn", "Name": "keys", "SecretString": f.secret})
}

// TestKeyRotationWithoutColdStart: a warm instance re-reads KEYS_SECRET_ARN
// at most every KEYS_REFRESH_SECONDS, on the request path. After a rotation
// of the signing key it signs with the new key and publishes both, so a
// token signed before the rotation still validates; a failed re-read keeps
// the keys it has; and an HMAC key that changed makes pending codes start
// afresh (documented in docs/deploy.md).
func TestKeyRotationWithoutColdStart(t *testing.T) {
	oldMaster, newMaster := strings.Repeat("Old", 22), strings.Repeat("New", 22)
	sm := &secretsManagerFake{secret: `{"master":"` + oldMaster + `"}`}
	srv := httptest.NewServer(sm)
	defer srv.Close()
	s := apptest.NewWith(t, map[string]string{
		"KEYS_SECRET_ARN":      "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys-AbCdEf",
		"KEYS_REFRESH_SECONDS": "60",
	}, app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"secretsmanager": srv.URL}})
	do := func(method, path, body string) (int, []byte) {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.RemoteAddr = "192.0.2.50:1234"
		req.Header.Set("Content-Type", "application/json")
		s.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	kids := func() []string {
		t.Helper()
		_, body := do("GET", "/auth/v1/.well-known/jwks.json", "")
		var set struct{ Keys []struct{ Kid string } }
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatalf("jwks %s: %v", body, err)
		}
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Kid)
		}
		return out
	}
	sendAndVerify := func(email string) (id, code, tok string) {
		t.Helper()
		st, body := do("POST", "/auth/v1/verification", `{"target":"ANY","email":"`+email+`"}`)
		var sent struct {
			ID string `json:"verification_id"`
		}
		if err := json.Unmarshal(body, &sent); st != 200 || err != nil {
			t.Fatalf("send: %d %s", st, body)
		}
		code = s.LastCode(t)
		st, body = do("POST", "/auth/v1/verification/verify", `{"verification_id":"`+sent.ID+`","verification_code":"`+code+`"}`)
		var v struct {
			Token string `json:"verification_token"`
		}
		if err := json.Unmarshal(body, &v); st != 200 || err != nil {
			t.Fatalf("verify: %d %s", st, body)
		}
		return sent.ID, code, v.Token
	}

	oldKids := kids()
	_, _, oldToken := sendAndVerify("before@example.com")
	// A code pending across the rotation (sent, not yet verified).
	st, body := do("POST", "/auth/v1/verification", `{"target":"ANY","email":"pending@example.com"}`)
	var pending struct {
		ID string `json:"verification_id"`
	}
	if err := json.Unmarshal(body, &pending); st != 200 || err != nil {
		t.Fatalf("send: %d %s", st, body)
	}
	pendingCode := s.LastCode(t)
	if len(oldKids) != 1 || sm.count() != 1 {
		t.Fatalf("at start: kids %v, %d reads; want one key, one read (the cold start's)", oldKids, sm.count())
	}

	// Rotate: a new master, the old one as previous.
	sm.set(`{"master":"`+newMaster+`","previous_master":"`+oldMaster+`"}`, false)
	s.Clock.Advance(59 * time.Second)
	if got := kids(); len(got) != 1 || got[0] != oldKids[0] || sm.count() != 1 {
		t.Fatalf("before the interval: kids %v, %d reads; want the old key and no re-read", got, sm.count())
	}
	s.Clock.Advance(time.Second)
	newKids := kids()
	if len(newKids) != 2 || newKids[1] != oldKids[0] || newKids[0] == oldKids[0] || sm.count() != 2 {
		t.Fatalf("after the interval: kids %v, %d reads; want [new, old] after one re-read", newKids, sm.count())
	}
	kids()
	if sm.count() != 2 {
		t.Fatalf("%d reads: the secret was re-read again within the interval", sm.count())
	}

	_, _, newToken := sendAndVerify("after@example.com")
	_, jwks := do("GET", "/auth/v1/.well-known/jwks.json", "")
	v, err := token.NewValidator(jwks, "verifykit", "verifykit")
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"before the rotation": oldToken, "after it": newToken} {
		if _, err := v.Validate(tok, s.Clock.Now()); err != nil {
			t.Errorf("token signed %s: %v", name, err)
		}
	}
	if hdr := strings.Split(newToken, ".")[0]; !strings.Contains(decodeSegment(t, hdr), newKids[0]) {
		t.Errorf("the new token is not signed with the new key (kid %s)", newKids[0])
	}
	// The HMAC key changed with the master: the pending code starts afresh.
	if st, body := do("POST", "/auth/v1/verification/verify", `{"verification_id":"`+pending.ID+`","verification_code":"`+pendingCode+`"}`); st == 200 {
		t.Fatalf("a code sent under the old HMAC key verified after the rotation: %s", body)
	}

	// A failed re-read keeps the keys, logs, and waits for the next interval.
	sm.set("", true)
	s.Clock.Advance(60 * time.Second)
	reads := sm.count()
	if got := kids(); strings.Join(got, ",") != strings.Join(newKids, ",") {
		t.Fatalf("after a failed re-read: kids %v, want %v kept", got, newKids)
	}
	if sm.count() == reads {
		t.Fatal("the secret was not re-read after the interval")
	}
	reads = sm.count()
	kids()
	if sm.count() != reads {
		t.Fatal("a failed re-read is retried on the next request, not after the interval")
	}
	if !strings.Contains(s.Stdout.String(), "re-reading the secret failed") {
		t.Errorf("no log line for the failed re-read:\n%s", s.Stdout.String())
	}

	// A value that is JSON but gives no usable keys (both explicit keys,
	// the HMAC key too short) is kept away the same way, with its reason.
	sm.set(`{"hmac_key":"`+base64.StdEncoding.EncodeToString([]byte("too-short"))+`","signing_key":"`+strings.ReplaceAll(apptest.SigningKeyPEM(t), "\n", `\n`)+`"}`, false)
	s.Clock.Advance(60 * time.Second)
	reads = sm.count()
	if got := kids(); strings.Join(got, ",") != strings.Join(newKids, ",") || sm.count() != reads+1 {
		t.Fatalf("after an unusable value: kids %v after %d re-reads, want %v kept after one", got, sm.count()-reads, newKids)
	}
	if !strings.Contains(s.Stdout.String(), `re-reading the secret failed; serving on with the current keys","error":"HMAC key must be at least 32 bytes"`) {
		t.Errorf("no log line for the unusable value:\n%s", s.Stdout.String())
	}
}

func decodeSegment(t *testing.T, seg string) string {
	t.Helper()
	var hdr struct{ Kid string }
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}
