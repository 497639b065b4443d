package dynamo

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// Every expression of this package is made with the SDK's expression
// builder, which writes each attribute name as a #placeholder and each value
// as a :placeholder and derives ExpressionAttributeNames and
// ExpressionAttributeValues from the expression itself. So no attribute
// (ttl, identity, channel, target ...) can ever collide with one of
// DynamoDB's reserved words, and no request carries an unused value (which
// DynamoDB refuses).
//
// The builder is run once per expression, in New, not per request. Run per
// request it cost a send about 900 allocations and 90 µs (BENCHMARKS.md §1),
// while what it builds depends only on the limits and on which clauses a
// request has (the captcha gates, the user check). Each request value is
// given to the builder as a stand-in, arg(p), and prepare records which
// :placeholder carries which parameter p. A request then makes only its own
// ExpressionAttributeValues (prepared.bind); the expression strings and
// ExpressionAttributeNames are shared by all requests and never written after
// New (the SDK only reads its inputs).

// param is a value an expression takes from the request.
type param int

const (
	pNow         param = iota // the request's time, Unix ms
	pIPCut                    // now - IPWindow
	pCoolCut                  // now - Cooldown
	pDayCut                   // now - TargetWindow
	pIPTTL                    // the IP item's ttl
	pTgtTTL                   // the target item's ttl
	pNonce                    // the code's nonce
	pCodeHash                 // the code's hash
	pExpiresAt                // the code's expiry, Unix ms
	pIdentity                 // the code's identity
	pChannel                  // the code's channel
	pTarget                   // the code's target (ANY, USER, NOT_USER)
	pMaxAttempts              // attempts allowed
	pAnswerHash               // a captcha answer's hash
	pSeen                     // the attempts a verify read on the code
	pTokTTL                   // a captcha token's item's ttl
	numParams
)

var paramNames = [numParams]string{
	pNow: "now", pIPCut: "ipCut", pCoolCut: "coolCut", pDayCut: "dayCut", pIPTTL: "ipTTL", pTgtTTL: "tgtTTL",
	pNonce: "nonce", pCodeHash: "codeHash", pExpiresAt: "expiresAt", pIdentity: "identity", pChannel: "channel",
	pTarget: "target", pMaxAttempts: "maxAttempts", pAnswerHash: "answerHash", pSeen: "seen", pTokTTL: "tokTTL",
}

func (p param) String() string {
	if p >= 0 && p < numParams {
		return paramNames[p]
	}
	return "param(" + strconv.Itoa(int(p)) + ")"
}

// args are one request's values, by parameter. Only those an expression
// takes need be set.
type args [numParams]types.AttributeValue

// sentinel starts the stand-in string of every parameter. New gives the
// builder only stand-ins and number constants, never a request's value, and
// the NUL keeps a stand-in apart from any text this store writes.
const sentinel = "\x00dynamo.param:"

// arg is the stand-in for parameter p in an expression built by New.
func arg(p param) expression.ValueBuilder {
	return expression.Value(sentinel + strconv.Itoa(int(p)))
}

// prepared is an expression built once, ready to be bound to a request's
// values.
type prepared struct {
	op string // for errors

	// The expression strings, nil for those the expression lacks, and its
	// ExpressionAttributeNames. Shared by all requests: read only.
	update, condition, projection *string
	names                         map[string]string

	values []exprValue // of ExpressionAttributeValues
}

// exprValue is one :placeholder of a prepared expression: either a
// parameter, or a constant of the expression itself (the 0 of a slot shift,
// the 1 of a count), the same value in every request (read only).
type exprValue struct {
	name     string // ":3"
	param    param
	constant types.AttributeValue // nil for a parameter
}

// prepare builds b, an expression whose request values are stand-ins for
// exactly params. It fails when a :placeholder carries a stand-in not in
// params, or a string that is not a stand-in (the store's constants are
// numbers), or when a parameter has no placeholder: so a builder that
// changed how it writes values stops New instead of sending stand-ins.
func prepare(op string, b expression.Builder, params ...param) (prepared, error) {
	e, err := b.Build()
	if err != nil {
		return prepared{}, fmt.Errorf("dynamo: %s: build expression: %w", op, err)
	}
	p := prepared{op: op, update: e.Update(), condition: e.Condition(), projection: e.Projection(), names: e.Names()}
	var seen [numParams]bool
	for _, name := range slices.Sorted(maps.Keys(e.Values())) {
		switch v := e.Values()[name].(type) {
		case *types.AttributeValueMemberN:
			p.values = append(p.values, exprValue{name: name, constant: v})
			continue
		case *types.AttributeValueMemberS:
			i, err := strconv.Atoi(strings.TrimPrefix(v.Value, sentinel))
			if q := param(i); err == nil && strings.HasPrefix(v.Value, sentinel) && slices.Contains(params, q) {
				p.values = append(p.values, exprValue{name: name, param: q})
				seen[q] = true
				continue
			}
		}
		return prepared{}, fmt.Errorf("dynamo: %s: placeholder %s carries %v, not one of the parameters %v", op, name, e.Values()[name], params)
	}
	for _, q := range params {
		if !seen[q] {
			return prepared{}, fmt.Errorf("dynamo: %s: parameter %s has no placeholder", op, q)
		}
	}
	return p, nil
}

// bind returns the ExpressionAttributeValues of p for the request values a:
// a fresh map, nil when p takes no values. It fails only when a lacks one of
// p's parameters, a bug of this package (internal_error).
func (p *prepared) bind(a *args) (map[string]types.AttributeValue, error) {
	if len(p.values) == 0 {
		return nil, nil
	}
	m := make(map[string]types.AttributeValue, len(p.values))
	for _, v := range p.values {
		av := v.constant
		if av == nil {
			if av = a[v.param]; av == nil {
				return nil, fmt.Errorf("dynamo: %s: no value for parameter %s", p.op, v.param)
			}
		}
		m[v.name] = av
	}
	return m, nil
}

func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func str(v string) types.AttributeValue {
	return &types.AttributeValueMemberS{Value: v}
}

// key is the primary key of an item of the verification table.
func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(pk)}
}

// ttlOf is the TTL attribute's value for an item that may vanish after t:
// Unix seconds, rounded up so an item never goes before t.
func ttlOf(t time.Time) int64 {
	s := t.Unix()
	if t.After(time.Unix(s, 0)) {
		s++
	}
	return s
}

// slotName is the attribute of slot i of a rolling window ("d3", "h0").
func slotName(prefix string, i int) string {
	return prefix + strconv.Itoa(i)
}

// window is the slot attributes of one rolling window on its item, oldest
// first ("d0".."d{n-1}").
type window []expression.NameBuilder

func newWindow(prefix string, n int) window {
	w := make(window, n)
	for i := range w {
		w[i] = expression.Name(slotName(prefix, i))
	}
	return w
}

// zero is the slot value "no event", a constant of the expressions.
var zero = expression.Value(0)

// shift adds to u the SET actions that accept an event at now:
//
//	d0 = if_not_exists(d1, 0), …, d{n-2} = if_not_exists(d{n-1}, 0), d{n-1} = now
//
// Every right-hand side reads the item as it was before the update, so the
// slots move one place towards the old end and the oldest falls out; a
// missing item (or slot) reads as zero, "no event". Nothing is read first.
func (w window) shift(u expression.UpdateBuilder, now expression.OperandBuilder) expression.UpdateBuilder {
	n := len(w)
	for i := 0; i < n-1; i++ {
		u = u.Set(w[i], w[i+1].IfNotExists(zero))
	}
	return u.Set(w[n-1], now)
}

// unshift adds to u the SET actions that undo shift: the newest slot is
// dropped and a zero enters at the old end. The value the shift dropped had
// left the window (that is why the event was accepted), so the zero is
// equivalent to it.
func (w window) unshift(u expression.UpdateBuilder) expression.UpdateBuilder {
	for i := len(w) - 1; i > 0; i-- {
		u = u.Set(w[i], w[i-1].IfNotExists(zero))
	}
	return u.Set(w[0], zero)
}

// olderThan is the condition "slot i holds no event newer than cut": either
// it was never set or its event is at or before the cutoff.
func (w window) olderThan(i int, cut expression.OperandBuilder) expression.ConditionBuilder {
	return w[i].AttributeNotExists().Or(w[i].LessThanEqual(cut))
}

// slotsOf reads the n slots of a rolling window from an item returned by
// DynamoDB (ALL_OLD). A missing item or slot is zero, "no event". Exactly the
// slots the condition expressions look at are read, so Judge sees what the
// conditions saw.
func slotsOf(item map[string]types.AttributeValue, prefix string, n int) verification.Slots {
	if item == nil {
		return make(verification.Slots, n)
	}
	out := make(verification.Slots, n)
	for i := range out {
		out[i] = numOf(item, slotName(prefix, i))
	}
	return out
}

// numOf reads a number attribute, 0 when missing or not a number.
func numOf(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err == nil {
			return n
		}
	}
	return 0
}
