package verification

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"sync"

	"github.com/verifykit/verifykit/internal/kdf"
)

// Keys derives every keyed hash of the domain from one server secret, each
// under its own label so that no two uses can be confused.
type Keys struct {
	code, handle, pad, tag *keyedMAC
	idemKey, idemBody      *keyedMAC // idempotency.go
}

// NewKeys derives the domain's keys from master (at least 32 bytes).
func NewKeys(master []byte) (*Keys, error) {
	if err := kdf.Check("HMAC key", master); err != nil {
		return nil, err
	}
	return &Keys{
		code:   newKeyedMAC(kdf.Derive(master, "verification code v1")),
		handle: newKeyedMAC(kdf.Derive(master, "target handle v1")),
		pad:    newKeyedMAC(kdf.Derive(master, "verification id pad v1")),
		tag:    newKeyedMAC(kdf.Derive(master, "verification id tag v1")),

		idemKey:  newKeyedMAC(kdf.Derive(master, "idempotency key v1")),
		idemBody: newKeyedMAC(kdf.Derive(master, "idempotency body v1")),
	}, nil
}

// keyedMAC computes HMAC-SHA-256 under one key. Building an HMAC (two
// SHA-256 states, the padded keys) costs more than hashing the few bytes of
// a request, so the keyed states are pooled: Reset brings one back to the
// state right after the key, and nothing of an earlier message survives it.
type keyedMAC struct {
	pool sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	buf []byte // the message being built
	sum [sha256.Size]byte
}

func newKeyedMAC(key []byte) *keyedMAC {
	k := &keyedMAC{}
	k.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return k
}

// sum appends to dst the MAC of parts, each length-prefixed so that part
// boundaries cannot shift.
func (k *keyedMAC) sum(dst []byte, parts ...[]byte) []byte {
	st := k.pool.Get().(*macState)
	st.buf = st.buf[:0]
	for _, p := range parts {
		st.buf = binary.BigEndian.AppendUint32(st.buf, uint32(len(p)))
		st.buf = append(st.buf, p...)
	}
	st.h.Reset()
	st.h.Write(st.buf)
	dst = append(dst, st.h.Sum(st.sum[:0])...)
	// The message may hold a code: wipe it, and the hash state, before the
	// state waits in the pool.
	clear(st.buf)
	st.h.Reset()
	k.pool.Put(st)
	return dst
}

// Handle is the pseudonymous storage key of an identity: the limits and the
// current code of a target live under it, and a table dump shows no phone
// number or email in its keys.
func (k *Keys) Handle(identity string) string {
	var m [sha256.Size]byte
	return encode64(k.handle.sum(m[:0], []byte(identity))[:16])
}

// CodeHash is the keyed hash stored in place of a code, bound to the nonce
// of its verification so that equal codes of two sends never hash alike.
func (k *Keys) CodeHash(nonce, code string) string {
	var m [sha256.Size]byte
	return encode64(k.code.sum(m[:0], []byte(nonce), []byte(code)))
}

const (
	nonceLen = 16
	idLen    = 3 * 16 // nonce, encrypted handle, tag
)

// NewNonce returns 128 random bits, base64url: the unguessable part of a
// verification_id and the key of its code.
func NewNonce() (string, error) {
	var b [nonceLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return encode64(b[:]), nil
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
	var n, h [16]byte
	if !decode16(&n, nonce) || !decode16(&h, handle) {
		return "", errors.New("bad nonce or handle")
	}
	var out [idLen]byte
	copy(out[:16], n[:])
	var pad, tag [sha256.Size]byte
	k.pad.sum(pad[:0], n[:])
	for i := range h {
		out[16+i] = h[i] ^ pad[i]
	}
	copy(out[32:], k.idTag(tag[:0], n[:], h[:], isUser))
	return encode64(out[:]), nil
}

// encode64 is base64url without padding of src (at most idLen bytes),
// encoded on the stack so that the string is the only allocation.
func encode64(src []byte) string {
	var buf [(idLen*8 + 5) / 6]byte
	n := base64.RawURLEncoding.EncodedLen(len(src))
	base64.RawURLEncoding.Encode(buf[:n], src)
	return string(buf[:n])
}

// decode16 decodes s, base64url of exactly 16 bytes, into dst.
func decode16(dst *[16]byte, s string) bool {
	if base64.RawURLEncoding.DecodedLen(len(s)) != len(dst) {
		return false
	}
	n, err := base64.RawURLEncoding.Decode(dst[:], []byte(s))
	return err == nil && n == len(dst)
}

// idTag appends to dst the 16-byte tag of an id.
func (k *Keys) idTag(dst, nonce, handle []byte, isUser bool) []byte {
	flag := []byte{0}
	if isUser {
		flag[0] = 1
	}
	return k.tag.sum(dst, nonce, handle, flag)[:len(dst)+16]
}

// ParseVerificationID reverses VerificationID. Any id this server did not
// issue fails, in constant time per candidate.
func (k *Keys) ParseVerificationID(id string) (nonce, handle string, isUser bool, err error) {
	if base64.RawURLEncoding.DecodedLen(len(id)) != idLen {
		return "", "", false, ErrExpired
	}
	var raw [idLen]byte
	if m, err := base64.RawURLEncoding.Decode(raw[:], []byte(id)); err != nil || m != idLen {
		return "", "", false, ErrExpired
	}
	n, enc, tag := raw[:16], raw[16:32], raw[32:]
	var pad, tagYes, tagNo [sha256.Size]byte
	k.pad.sum(pad[:0], n)
	var h [16]byte
	for i := range h {
		h[i] = enc[i] ^ pad[i]
	}
	yes := subtle.ConstantTimeCompare(tag, k.idTag(tagYes[:0], n, h[:], true))
	no := subtle.ConstantTimeCompare(tag, k.idTag(tagNo[:0], n, h[:], false))
	if yes|no == 0 {
		return "", "", false, ErrExpired
	}
	return encode64(n), encode64(h[:]), yes == 1, nil
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
