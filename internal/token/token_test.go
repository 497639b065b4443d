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

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/verifykit/verifykit/internal/token"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newIssuer(t *testing.T, seed string) *token.Issuer {
	t.Helper()
	key, err := token.KeyFromSeed([]byte(strings.Repeat(seed, 32)))
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(key, token.IssuerOptions{Issuer: "verifykit", Audience: "my-app", TTL: 600 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

var verified = token.Verified{
	Subject: "+8613800138000", Channel: "sms", Target: "NOT_USER",
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
	noLeeway, _ := token.NewValidator(iss.JWKS(), "verifykit", "my-app")
	noLeeway.Leeway = 0

	tests := []struct {
		name string
		v    *token.Validator
		tok  string
		at   time.Time
	}{
		// The default leeway (30 s) is the margin past exp and before iat.
		{"expired", v, tok, now.Add(631 * time.Second)},
		{"at expiry plus leeway", v, tok, now.Add(630 * time.Second)},
		{"at expiry without leeway", noLeeway, tok, now.Add(600 * time.Second)},
		{"issued in the future", v, tok, now.Add(-31 * time.Second)},
		{"issued in the future without leeway", noLeeway, tok, now.Add(-time.Second)},
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

// TestLeeway: a validator whose clock is up to Leeway away from the
// issuer's accepts a token that is, by its own clock, just expired, issued
// just in the future or not yet valid; past the leeway it refuses it.
func TestLeeway(t *testing.T) {
	key, _ := token.KeyFromSeed([]byte(strings.Repeat("a", 32)))
	iss := newIssuer(t, "a")
	tok, _ := iss.Issue(verified, now)
	v, _ := token.NewValidator(iss.JWKS(), "verifykit", "my-app")
	if v.Leeway != token.DefaultLeeway || token.DefaultLeeway != 30*time.Second {
		t.Fatalf("default leeway %v, want 30s", v.Leeway)
	}
	for _, at := range []time.Time{now.Add(629 * time.Second), now.Add(-29 * time.Second)} {
		if _, err := v.Validate(tok, at); err != nil {
			t.Errorf("at %v: %v, want valid within the leeway", at.Sub(now), err)
		}
	}
	// "nbf" is not something this issuer writes, but a token that has one is
	// held to it, with the same leeway.
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), iss.KeyID()))
	c := token.Claims{Claims: jwt.Claims{
		Issuer: "verifykit", Audience: jwt.Audience{"my-app"}, Subject: "a@example.com", ID: "x",
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(time.Minute)), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)),
	}}
	nbf, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(nbf, now.Add(29*time.Second)); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("31 s before nbf minus leeway: %v, want ErrInvalid", err)
	}
	if _, err := v.Validate(nbf, now.Add(30*time.Second)); err != nil {
		t.Errorf("at nbf minus leeway: %v, want valid", err)
	}
}

// TestRotation: an issuer given the previous key publishes both, signs with
// the new one only, and a token the previous key signed still validates
// against its JWKS.
func TestRotation(t *testing.T) {
	old, cur := newIssuer(t, "a"), newIssuer(t, "b")
	oldKey, _ := token.KeyFromSeed([]byte(strings.Repeat("a", 32)))
	newKey, _ := token.KeyFromSeed([]byte(strings.Repeat("b", 32)))
	rotated, err := token.NewIssuer(newKey, token.IssuerOptions{Issuer: "verifykit", Audience: "my-app", TTL: 600 * time.Second, Previous: []*ecdsa.PublicKey{&oldKey.PublicKey, &newKey.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(rotated.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].Kid != cur.KeyID() || set.Keys[1].Kid != old.KeyID() {
		t.Fatalf("jwks %s, want the current key then the previous one (the current one once)", rotated.JWKS())
	}
	if rotated.KeyID() != cur.KeyID() {
		t.Fatal("the rotated issuer does not sign with the current key")
	}
	v, _ := token.NewValidator(rotated.JWKS(), "verifykit", "my-app")
	for name, iss := range map[string]*token.Issuer{"previous": old, "current": rotated} {
		tok, _ := iss.Issue(verified, now)
		if _, err := v.Validate(tok, now); err != nil {
			t.Errorf("a token of the %s key: %v", name, err)
		}
	}
	newTok, _ := rotated.Issue(verified, now)
	if vOld, _ := token.NewValidator(old.JWKS(), "verifykit", "my-app"); vOld != nil {
		if _, err := vOld.Validate(newTok, now); !errors.Is(err, token.ErrInvalid) {
			t.Fatalf("the previous key's JWKS validated a new token: %v", err)
		}
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
