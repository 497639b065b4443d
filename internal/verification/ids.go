package verification

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Keys derives every keyed hash of the domain from one server secret, each
// under its own label so that no two uses can be confused.
type Keys struct {
	code, handle, pad, tag []byte
}

// NewKeys derives the domain's keys from master (at least 32 bytes).
func NewKeys(master []byte) (*Keys, error) {
	if len(master) < 32 {
		return nil, errors.New("HMAC key must be at least 32 bytes")
	}
	return &Keys{
		code:   Derive(master, "verification code v1"),
		handle: Derive(master, "target handle v1"),
		pad:    Derive(master, "verification id pad v1"),
		tag:    Derive(master, "verification id tag v1"),
	}, nil
}

// Derive returns HMAC-SHA-256(master, label): a subkey for one purpose.
func Derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:]) // length-prefixed, so part boundaries cannot shift
		m.Write(p)
	}
	return m.Sum(nil)
}

// Handle is the pseudonymous storage key of an identity: the limits and the
// current code of a target live under it, and a table dump shows no phone
// number or email in its keys.
func (k *Keys) Handle(identity string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.handle, []byte(identity))[:16])
}

// CodeHash is the keyed hash stored in place of a code, bound to the nonce
// of its verification so that equal codes of two sends never hash alike.
func (k *Keys) CodeHash(nonce, code string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.code, []byte(nonce), []byte(code)))
}

const (
	nonceLen = 16
	idLen    = 3 * 16 // nonce, encrypted handle, tag
)

// NewNonce returns 128 random bits, base64url: the unguessable part of a
// verification_id and the key of its code.
func NewNonce() (string, error) {
	b := make([]byte, nonceLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// VerificationID builds the opaque verification_id of a send:
//
//	nonce (16 random bytes) | handle XOR pad(nonce) | tag(nonce, handle, isUser)
//
// It lets a verify find the target's record in one DynamoDB call without the
// id carrying personal data: the handle is a keyed hash, and it is encrypted
// with a pad derived from the nonce, so two ids of one target share nothing
// visible. The tag authenticates the whole id and carries the is_user answer
// of the send (which the same response already told the client), so an ANY
// send can look the user up concurrently with its transaction and the verify
// still knows the answer without a read.
func (k *Keys) VerificationID(nonce, handle string, isUser bool) (string, error) {
	n, err1 := base64.RawURLEncoding.DecodeString(nonce)
	h, err2 := base64.RawURLEncoding.DecodeString(handle)
	if err1 != nil || err2 != nil || len(n) != nonceLen || len(h) != 16 {
		return "", errors.New("bad nonce or handle")
	}
	out := make([]byte, 0, idLen)
	out = append(out, n...)
	pad := mac(k.pad, n)
	for i := range h {
		out = append(out, h[i]^pad[i])
	}
	out = append(out, k.idTag(n, h, isUser)...)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

func (k *Keys) idTag(nonce, handle []byte, isUser bool) []byte {
	flag := []byte{0}
	if isUser {
		flag[0] = 1
	}
	return mac(k.tag, nonce, handle, flag)[:16]
}

// ParseVerificationID reverses VerificationID. Any id this server did not
// issue fails, in constant time per candidate.
func (k *Keys) ParseVerificationID(id string) (nonce, handle string, isUser bool, err error) {
	if base64.RawURLEncoding.DecodedLen(len(id)) != idLen {
		return "", "", false, ErrExpired
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) != idLen {
		return "", "", false, ErrExpired
	}
	n, enc, tag := raw[:16], raw[16:32], raw[32:]
	pad := mac(k.pad, n)
	h := make([]byte, 16)
	for i := range h {
		h[i] = enc[i] ^ pad[i]
	}
	yes := subtle.ConstantTimeCompare(tag, k.idTag(n, h, true))
	no := subtle.ConstantTimeCompare(tag, k.idTag(n, h, false))
	if yes|no == 0 {
		return "", "", false, ErrExpired
	}
	enc64 := base64.RawURLEncoding.EncodeToString
	return enc64(n), enc64(h), yes == 1, nil
}

// NewCode returns six decimal digits from crypto/rand, uniformly: samples
// that would bias the reduction modulo 10^6 are drawn again.
func NewCode() (string, error) {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		// 2^32 - (2^32 mod 10^6) is the largest multiple of 10^6 below 2^32;
		// samples above it are rejected so every code is equally likely.
		v := binary.BigEndian.Uint32(b[:])
		if v >= 4294000000 {
			continue
		}
		v %= 1000000
		var out [6]byte
		for i := 5; i >= 0; i-- {
			out[i] = byte('0' + v%10)
			v /= 10
		}
		return string(out[:]), nil
	}
}
