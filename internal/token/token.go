// Package token issues and validates the verification_token: a short-lived
// JWT (ES256, "kid" in the header) saying which phone number or email was
// verified, for which target, and whether a user existed.
//
// A sign-in or sign-up service imports this package (or any JOSE library)
// and validates tokens offline against the public keys published at
// GET /auth/v1/.well-known/jwks.json; it never holds a key that can mint one.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/verifykit/verifykit/internal/kdf"
)

// Claims are the claims of a verification_token.
type Claims struct {
	jwt.Claims
	// Channel is "sms" or "email"; Subject is then the E.164 phone number
	// or the lower-case email.
	Channel string `json:"channel"`
	// Target is the target of the send: ANY, USER or NOT_USER.
	Target string `json:"target"`
	// IsUser says whether a user existed for the subject at the send.
	IsUser bool `json:"is_user"`
}

// Verified is what a token asserts, in plain values: the package knows no
// type of the service that issues it, so a consumer imports nothing more.
type Verified struct {
	// Subject is the E.164 phone number or the lower-case email.
	Subject string
	// Channel is "sms" or "email".
	Channel string
	// Target is the target of the send: ANY, USER or NOT_USER.
	Target string
	// IsUser says whether a user existed for the subject at the send.
	IsUser bool
}

// Issuer signs verification tokens.
type Issuer struct {
	key      *ecdsa.PrivateKey
	signer   jose.Signer
	kid      string
	issuer   string
	audience string
	ttl      time.Duration
	jwks     []byte
}

// IssuerOptions are what an Issuer writes into its tokens, and what it
// publishes besides its own key.
type IssuerOptions struct {
	Issuer   string        // the "iss" claim
	Audience string        // the one "aud" value
	TTL      time.Duration // from "iat" to "exp"
	// Previous are keys signed with before a rotation: the JWKS keeps
	// publishing them, so tokens they signed still validate until they
	// expire, but nothing new is signed with them.
	Previous []*ecdsa.PublicKey
}

// NewIssuer returns an issuer signing with key. The key id is the key's
// RFC 7638 thumbprint, so a rotated key gets a new kid by itself.
func NewIssuer(key *ecdsa.PrivateKey, o IssuerOptions) (*Issuer, error) {
	pub, err := publicJWK(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
	for _, p := range o.Previous {
		if p == nil || p.Equal(&key.PublicKey) {
			continue
		}
		old, err := publicJWK(p)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, old)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), pub.KeyID),
	)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	return &Issuer{key: key, signer: signer, kid: pub.KeyID, issuer: o.Issuer, audience: o.Audience, ttl: o.TTL, jwks: jwks}, nil
}

// publicJWK is the published form of a public key, its kid the thumbprint.
func publicJWK(key *ecdsa.PublicKey) (jose.JSONWebKey, error) {
	pub := jose.JSONWebKey{Key: key, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return pub, fmt.Errorf("thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return pub, nil
}

// KeyID is the kid of the signing key.
func (i *Issuer) KeyID() string { return i.kid }

// JWKS is the JSON Web Key Set of the public keys (the current one first,
// then any previous one), to serve as is.
func (i *Issuer) JWKS() []byte { return i.jwks }

// Issue signs a token asserting v, valid from now for the issuer's TTL.
func (i *Issuer) Issue(v Verified, now time.Time) (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	c := Claims{
		Claims: jwt.Claims{
			Issuer:   i.issuer,
			Audience: jwt.Audience{i.audience},
			Subject:  v.Subject,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(i.ttl)),
			ID:       base64.RawURLEncoding.EncodeToString(id),
		},
		Channel: v.Channel,
		Target:  v.Target,
		IsUser:  v.IsUser,
	}
	return jwt.Signed(i.signer).Claims(c).Serialize()
}

// Validator checks tokens offline against a set of public keys.
type Validator struct {
	keys     jose.JSONWebKeySet
	issuer   string
	audience string
	// Leeway is the clock skew tolerated between the issuer's clock and the
	// validator's, on "iat", "nbf" and "exp"; DefaultLeeway unless changed.
	Leeway time.Duration
}

// DefaultLeeway is the clock skew a new Validator tolerates: clocks of
// separate machines drift by seconds, and a token issued "in the future" by
// a second must not be refused.
const DefaultLeeway = 30 * time.Second

// NewValidator parses a JWKS document (as served at
// /auth/v1/.well-known/jwks.json) and returns a validator that accepts only
// tokens of issuer for audience. Private keys in the set are refused.
func NewValidator(jwks []byte, issuer, audience string) (*Validator, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("jwks holds a private key")
		}
	}
	if issuer == "" || audience == "" {
		return nil, errors.New("issuer and audience are required")
	}
	return &Validator{keys: set, issuer: issuer, audience: audience, Leeway: DefaultLeeway}, nil
}

// ErrInvalid is returned for any token that does not validate.
var ErrInvalid = errors.New("invalid verification token")

// Validate checks the signature (ES256 only, key chosen by kid), issuer,
// audience, expiry, not-before and issue time at now (each with the
// Leeway), and returns the claims.
func (v *Validator) Validate(token string, now time.Time) (*Claims, error) {
	t, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(t.Headers) != 1 {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	keys := v.keys.Key(t.Headers[0].KeyID)
	if len(keys) != 1 {
		return nil, fmt.Errorf("%w: unknown kid", ErrInvalid)
	}
	var c Claims
	if err := t.Claims(keys[0].Key, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.Expiry == nil || c.IssuedAt == nil || c.Subject == "" || c.ID == "" {
		return nil, fmt.Errorf("%w: missing claims", ErrInvalid)
	}
	// RFC 7519: the token is valid only before "exp" (go-jose also accepts
	// the instant itself), give or take the leeway.
	if !now.Before(c.Expiry.Time().Add(v.Leeway)) {
		return nil, fmt.Errorf("%w: expired", ErrInvalid)
	}
	// go-jose applies the leeway to "nbf" and "iat" (not yet valid, issued
	// in the future) as to "exp".
	err = c.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.issuer,
		AnyAudience: jwt.Audience{v.audience},
		Time:        now,
	}, v.Leeway)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &c, nil
}

// KeyFromSeed derives a P-256 private key from a secret seed, so every
// instance of a deployment that shares the seed signs with the same key and
// serves the same JWKS. The scalar is HMAC-derived and retried with a counter
// until it falls in [1, n-1], which keeps it uniform.
func KeyFromSeed(seed []byte) (*ecdsa.PrivateKey, error) {
	if err := kdf.Check("signing seed", seed); err != nil {
		return nil, err
	}
	for i := 0; i < 100; i++ {
		d := kdf.Derive(seed, fmt.Sprintf("es256 signing key v1 %d", i))
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("could not derive a signing key")
}

// ParsePEM reads an EC P-256 private key in PEM (SEC 1 "EC PRIVATE KEY" or
// PKCS #8 "PRIVATE KEY").
func ParsePEM(data string) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(data))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("signing key must be an EC P-256 key (ES256)")
	}
	return ec, nil
}
