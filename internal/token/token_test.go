package token_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/token"
	"github.com/verifykit/verifykit/internal/verification"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newIssuer(t *testing.T, seed string) *token.Issuer {
	t.Helper()
	key, err := token.KeyFromSeed([]byte(strings.Repeat(seed, 32)))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(key, "verifykit", "my-app", 600*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

var verified = verification.Verified{
	Record: verification.Record{Identity: "+8613800138000", Channel: verification.SMS, Target: verification.TargetNotUser},
	IsUser: false,
}

func TestIssueAndValidate(t *testing.T) {
	iss := newIssuer(t, "a")
	tok, err := iss.Issue(verified, now)
	if err != nil {
		t.Fatal(err)
	}
	// The header names the algorithm and the key.
	var hdr map[string]string
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err := json.Unmarshal(raw, &hdr); err != nil || hdr["alg"] != "ES256" || hdr["kid"] != iss.KeyID() || hdr["typ"] != "JWT" {
		t.Fatalf("header %v", hdr)
	}
	v, err := token.NewValidator(iss.JWKS(), "verifykit", "my-app")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Validate(tok, now.Add(599*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "+8613800138000" || c.Channel != "sms" || c.Target != "NOT_USER" || c.IsUser || c.ID == "" ||
		c.Issuer != "verifykit" || !c.Audience.Contains("my-app") || c.Expiry.Time().Sub(c.IssuedAt.Time()) != 600*time.Second {
		t.Fatalf("claims %+v", c)
	}
	tok2, _ := iss.Issue(verified, now)
	if c2, _ := v.Validate(tok2, now); c2.ID == c.ID {
		t.Fatal("two tokens share a jti")
	}
}

func TestValidateRefuses(t *testing.T) {
	iss := newIssuer(t, "a")
	other := newIssuer(t, "b")
	tok, _ := iss.Issue(verified, now)
	foreign, _ := other.Issue(verified, now)
	v, err := token.NewValidator(iss.JWKS(), "verifykit", "my-app")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "NOT_USER", "USER", 1))) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+iss.KeyID()+`"}`)) + "." + parts[1] + "."
	wrongAud, _ := token.NewValidator(iss.JWKS(), "verifykit", "other-app")
	wrongIss, _ := token.NewValidator(iss.JWKS(), "someone-else", "my-app")

	tests := []struct {
		name string
		v    *token.Validator
		tok  string
		at   time.Time
	}{
		{"expired", v, tok, now.Add(601 * time.Second)},
		{"at expiry", v, tok, now.Add(600 * time.Second)},
		{"issued in the future", v, tok, now.Add(-time.Minute)},
		{"other key", v, foreign, now},
		{"tampered payload", v, tampered, now},
		{"alg none", v, none, now},
		{"garbage", v, "not.a.token", now},
		{"empty", v, "", now},
		{"wrong audience", wrongAud, tok, now},
		{"wrong issuer", wrongIss, tok, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.v.Validate(tt.tok, tt.at); !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestJWKSHoldsNoPrivateKey(t *testing.T) {
	iss := newIssuer(t, "a")
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %s", iss.JWKS())
	}
	k := set.Keys[0]
	if _, ok := k["d"]; ok {
		t.Fatal("JWKS leaks the private key")
	}
	if k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" || k["use"] != "sig" || k["kid"] != iss.KeyID() {
		t.Fatalf("key %v", k)
	}
	// A JWKS with a private key is refused by the validator.
	priv := strings.Replace(string(iss.JWKS()), `"kty"`, `"d":"AAAA","kty"`, 1)
	if _, err := token.NewValidator([]byte(priv), "verifykit", "my-app"); err == nil {
		t.Fatal("validator accepted a JWKS with a private key")
	}
}

func TestKeyFromSeedIsStable(t *testing.T) {
	a, b := newIssuer(t, "s"), newIssuer(t, "s")
	if a.KeyID() != b.KeyID() || string(a.JWKS()) != string(b.JWKS()) {
		t.Fatal("the same seed gave two keys: instances would disagree")
	}
	if newIssuer(t, "t").KeyID() == a.KeyID() {
		t.Fatal("different seeds gave one key")
	}
	if _, err := token.KeyFromSeed([]byte("short")); err == nil {
		t.Fatal("accepted a short seed")
	}
}

func TestParsePEM(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(key)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, p := range []*pem.Block{{Type: "EC PRIVATE KEY", Bytes: sec1}, {Type: "PRIVATE KEY", Bytes: pkcs8}} {
		got, err := token.ParsePEM(string(pem.EncodeToMemory(p)))
		if err != nil || !got.Equal(key) {
			t.Fatalf("%s: %v", p.Type, err)
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	b, _ := x509.MarshalECPrivateKey(p384)
	if _, err := token.ParsePEM(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}))); err == nil {
		t.Fatal("accepted a P-384 key for ES256")
	}
	if _, err := token.ParsePEM("nonsense"); err == nil {
		t.Fatal("accepted nonsense")
	}
}
