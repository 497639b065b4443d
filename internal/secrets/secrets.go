// Package secrets provides the two secrets every instance of a deployment
// must share: the HMAC key (code hashes, ids, captcha answers and tokens) and
// the ES256 key that signs verification tokens.
package secrets

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/verifykit/verifykit/internal/kdf"
	"github.com/verifykit/verifykit/internal/token"
)

// Keys are the service's secrets.
type Keys struct {
	HMAC    []byte
	Signing *ecdsa.PrivateKey
	// Previous is the signing key in use before a rotation, when the secret
	// still names it: its public half stays in the JWKS so that the tokens
	// it signed validate until they expire. Nothing is signed with it.
	Previous *ecdsa.PublicKey
	// Generated is true when the keys were made up at start-up: right for one
	// local process, wrong for anything with more than one instance.
	Generated bool
}

// SecretGetter is the one Secrets Manager call needed.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Equal reports whether k and o are the same keys (a re-read secret that
// has not changed).
func (k Keys) Equal(o Keys) bool {
	samePrevious := k.Previous == nil && o.Previous == nil ||
		k.Previous != nil && o.Previous != nil && k.Previous.Equal(o.Previous)
	return subtle.ConstantTimeCompare(k.HMAC, o.HMAC) == 1 && samePrevious &&
		k.Signing != nil && o.Signing != nil && k.Signing.Equal(o.Signing)
}

// secretDoc is the JSON of the secret. The template generates {"master": ...}
// (random, never seen by anyone); operators may instead store explicit keys.
// During a rotation of the signing key the secret also names the previous
// one (previous_master or previous_signing_key); see docs/deploy.md.
type secretDoc struct {
	Master     string `json:"master"`
	HMACKey    string `json:"hmac_key"`    // base64, at least 32 bytes
	SigningKey string `json:"signing_key"` // PEM, EC P-256

	PreviousMaster     string `json:"previous_master"`
	PreviousSigningKey string `json:"previous_signing_key"` // PEM, EC P-256
}

// FromSecretsManager reads the keys from one secret: at a cold start, and
// again on a warm instance every KEYS_REFRESH_SECONDS.
func FromSecretsManager(ctx context.Context, c SecretGetter, arn string) (Keys, error) {
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
	if err != nil {
		return Keys{}, fmt.Errorf("read secret %s: %w", arn, err)
	}
	if out.SecretString == nil {
		return Keys{}, errors.New("secret has no string value")
	}
	var doc secretDoc
	if err := json.Unmarshal([]byte(*out.SecretString), &doc); err != nil {
		return Keys{}, errors.New("secret is not a JSON object") // never echo the secret
	}
	var k Keys
	if doc.Master != "" {
		k, err = FromMaster([]byte(doc.Master))
	} else {
		hmacKey, decodeErr := base64.StdEncoding.DecodeString(doc.HMACKey)
		if decodeErr != nil {
			return Keys{}, errors.New("secret: hmac_key is not base64")
		}
		// A secret is for every instance: a key missing from it must not
		// be made up by one of them.
		if len(hmacKey) == 0 || doc.SigningKey == "" {
			return Keys{}, errors.New("secret: master, or both hmac_key and signing_key, required")
		}
		k, err = FromValues(hmacKey, doc.SigningKey)
	}
	if err != nil {
		return Keys{}, err
	}
	switch {
	case doc.PreviousMaster != "":
		old, err := FromMaster([]byte(doc.PreviousMaster))
		if err != nil {
			return Keys{}, fmt.Errorf("previous_master: %w", err)
		}
		k.Previous = &old.Signing.PublicKey
	case doc.PreviousSigningKey != "":
		old, err := token.ParsePEM(doc.PreviousSigningKey)
		if err != nil {
			return Keys{}, fmt.Errorf("previous_signing_key: %w", err)
		}
		k.Previous = &old.PublicKey
	}
	return k, nil
}

// FromMaster derives both keys from one random master secret (at least 32
// bytes), so a deployment needs a single generated secret.
func FromMaster(master []byte) (Keys, error) {
	if err := kdf.Check("master secret", master); err != nil {
		return Keys{}, err
	}
	signing, err := token.KeyFromSeed(kdf.Derive(master, "signing seed v1"))
	if err != nil {
		return Keys{}, err
	}
	return Keys{HMAC: kdf.Derive(master, "hmac key v1"), Signing: signing}, nil
}

// FromValues uses explicit keys (HMAC_KEY, SIGNING_KEY); a missing one is
// generated, and Generated says so.
func FromValues(hmacKey []byte, signingPEM string) (Keys, error) {
	var k Keys
	switch {
	case len(hmacKey) == 0:
		k.HMAC, k.Generated = make([]byte, kdf.MinLen), true
		if _, err := rand.Read(k.HMAC); err != nil {
			return Keys{}, err
		}
	default:
		if err := kdf.Check("HMAC key", hmacKey); err != nil {
			return Keys{}, err
		}
		k.HMAC = hmacKey
	}
	if signingPEM == "" {
		seed := make([]byte, kdf.MinLen)
		if _, err := rand.Read(seed); err != nil {
			return Keys{}, err
		}
		signing, err := token.KeyFromSeed(seed)
		if err != nil {
			return Keys{}, err
		}
		k.Signing, k.Generated = signing, true
		return k, nil
	}
	signing, err := token.ParsePEM(signingPEM)
	if err != nil {
		return Keys{}, fmt.Errorf("signing key: %w", err)
	}
	k.Signing = signing
	return k, nil
}

// String reads a plain secret string (the SMTP URL with its credentials).
func String(ctx context.Context, c SecretGetter, arn string) (string, error) {
	out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", arn, err)
	}
	if out.SecretString == nil || *out.SecretString == "" {
		return "", fmt.Errorf("secret %s has no string value", arn)
	}
	return *out.SecretString, nil
}
