package secrets_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/verifykit/verifykit/internal/secrets"
)

// secretsManager answers GetSecretValue at the wire (JSON 1.1 protocol) with
// secret, and records the SecretId asked for.
func secretsManager(t testing.TB, secret string) (*secretsmanager.Client, *string) {
	t.Helper()
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
			http.Error(w, "unexpected", 400)
			return
		}
		var in struct{ SecretId string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &in)
		asked = in.SecretId
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]string{"ARN": in.SecretId, "Name": "keys", "SecretString": secret})
	}))
	t.Cleanup(srv.Close)
	c := secretsmanager.New(secretsmanager.Options{
		BaseEndpoint: aws.String(srv.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	return c, &asked
}

const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys-AbCdEf"

func TestFromSecretsManagerMaster(t *testing.T) {
	c, asked := secretsManager(t, `{"master":"`+strings.Repeat("Zq9", 22)+`"}`)
	a, err := secrets.FromSecretsManager(context.Background(), c, arn)
	if err != nil {
		t.Fatal(err)
	}
	if *asked != arn {
		t.Fatalf("asked for %q", *asked)
	}
	b, _ := secrets.FromMaster([]byte(strings.Repeat("Zq9", 22)))
	// Two instances reading one secret derive the same keys.
	if a.Generated || string(a.HMAC) != string(b.HMAC) || !a.Signing.Equal(b.Signing) || len(a.HMAC) != 32 {
		t.Fatal("the same master gave different keys")
	}
	if string(a.HMAC) == strings.Repeat("Zq9", 22)[:32] {
		t.Fatal("the HMAC key is the master itself, not derived")
	}
}

func TestFromSecretsManagerExplicitKeys(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	doc, _ := json.Marshal(map[string]string{
		"hmac_key":    base64.StdEncoding.EncodeToString([]byte(strings.Repeat("h", 32))),
		"signing_key": string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})),
	})
	c, _ := secretsManager(t, string(doc))
	k, err := secrets.FromSecretsManager(context.Background(), c, arn)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.HMAC) != strings.Repeat("h", 32) || !k.Signing.Equal(key) || k.Generated {
		t.Fatal("explicit keys not used as given")
	}
}

// TestFromSecretsManagerPrevious: during a rotation the secret names the
// previous signing key beside the current one, in either form; the previous
// key is kept public only, and the current key is the one that signs.
func TestFromSecretsManagerPrevious(t *testing.T) {
	oldMaster, newMaster := strings.Repeat("Old", 22), strings.Repeat("New", 22)
	oldKeys, _ := secrets.FromMaster([]byte(oldMaster))
	newKeys, _ := secrets.FromMaster([]byte(newMaster))
	c, _ := secretsManager(t, `{"master":"`+newMaster+`","previous_master":"`+oldMaster+`"}`)
	k, err := secrets.FromSecretsManager(context.Background(), c, arn)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Signing.Equal(newKeys.Signing) || string(k.HMAC) != string(newKeys.HMAC) || k.Previous == nil || !k.Previous.Equal(&oldKeys.Signing.PublicKey) {
		t.Fatal("previous_master: want the new keys, and the old signing key as previous")
	}

	oldPEM, newPEM := pemKey(t), pemKey(t)
	doc, _ := json.Marshal(map[string]string{
		"hmac_key":             base64.StdEncoding.EncodeToString([]byte(strings.Repeat("h", 32))),
		"signing_key":          newPEM.pem,
		"previous_signing_key": oldPEM.pem,
	})
	c, _ = secretsManager(t, string(doc))
	k, err = secrets.FromSecretsManager(context.Background(), c, arn)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Signing.Equal(newPEM.key) || k.Previous == nil || !k.Previous.Equal(&oldPEM.key.PublicKey) {
		t.Fatal("previous_signing_key: want the new key signing, the old one as previous")
	}
}

type testKey struct {
	key *ecdsa.PrivateKey
	pem string
}

func pemKey(t *testing.T) testKey {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	return testKey{key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))}
}

func TestKeysEqual(t *testing.T) {
	a, _ := secrets.FromMaster([]byte(strings.Repeat("Zq9", 22)))
	b, _ := secrets.FromMaster([]byte(strings.Repeat("Zq9", 22)))
	other, _ := secrets.FromMaster([]byte(strings.Repeat("Xy8", 22)))
	if !a.Equal(b) {
		t.Fatal("the same secret read twice is not Equal")
	}
	withPrevious := b
	withPrevious.Previous = &other.Signing.PublicKey
	otherHMAC := b
	otherHMAC.HMAC = other.HMAC
	otherSigning := b
	otherSigning.Signing = other.Signing
	for name, k := range map[string]secrets.Keys{"previous": withPrevious, "hmac": otherHMAC, "signing": otherSigning} {
		if a.Equal(k) || k.Equal(a) {
			t.Errorf("a different %s key is Equal", name)
		}
	}
}

func TestBadSecretsNeverEchoTheSecret(t *testing.T) {
	goodHMAC := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	goodPEM, _ := json.Marshal(pemKey(t).pem)
	for _, secret := range []string{
		// Both explicit keys present, one of them bad.
		`{"hmac_key":"` + base64.StdEncoding.EncodeToString([]byte("s3cr3t-too-short")) + `","signing_key":` + string(goodPEM) + `}`,
		`{"hmac_key":"` + goodHMAC + `","signing_key":"s3cr3t"}`,
		// A secret serves every instance: no instance may make up the
		// half it lacks.
		`{"hmac_key":"` + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s3cr3t", 6))) + `"}`,
		`{"signing_key":"s3cr3t"}`,
		`{"master":"` + strings.Repeat("Zq9", 22) + `","previous_master":"s3cr3t"}`,
		`{"master":"` + strings.Repeat("Zq9", 22) + `","previous_signing_key":"s3cr3t"}`,
		`not json s3cr3t-value`,
		`{"master":"short-s3cr3t"}`,
		`{"hmac_key":"!!s3cr3t!!"}`,
		`{"hmac_key":"` + base64.StdEncoding.EncodeToString([]byte("s3cr3t-too-short")) + `"}`,
	} {
		c, _ := secretsManager(t, secret)
		_, err := secrets.FromSecretsManager(context.Background(), c, arn)
		if err == nil {
			t.Fatalf("accepted %q", secret)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("error echoes the secret: %v", err)
		}
	}
}

func TestFromValuesGeneratesWhatIsMissing(t *testing.T) {
	k, err := secrets.FromValues(nil, "")
	if err != nil || !k.Generated || len(k.HMAC) != 32 || k.Signing == nil {
		t.Fatalf("%+v %v", k, err)
	}
	k2, _ := secrets.FromValues(nil, "")
	if string(k.HMAC) == string(k2.HMAC) {
		t.Fatal("two generated keys are equal")
	}
	if _, err := secrets.FromValues([]byte("short"), ""); err == nil {
		t.Fatal("accepted a short HMAC key")
	}
}

// BenchmarkFromMaster is the key derivation a cold start pays after reading
// the secret (the Secrets Manager call itself is one HTTPS round trip).
func BenchmarkFromMaster(b *testing.B) {
	master := []byte(strings.Repeat("Zq9", 22))
	for b.Loop() {
		if _, err := secrets.FromMaster(master); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromSecretsManager is the whole cold-start cost of the keys
// against a loopback Secrets Manager: the SDK call (signing, JSON) plus the
// derivation. In AWS one HTTPS round trip to Secrets Manager comes on top.
func BenchmarkFromSecretsManager(b *testing.B) {
	c, _ := secretsManager(b, `{"master":"`+strings.Repeat("Zq9", 22)+`"}`)
	for b.Loop() {
		if _, err := secrets.FromSecretsManager(context.Background(), c, arn); err != nil {
			b.Fatal(err)
		}
	}
}
