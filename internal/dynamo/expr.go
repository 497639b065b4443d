package dynamo

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// Every expression of this package is written out as text, in the function
// of New that builds it, beside the reason for it. Placeholders are named:
// an attribute is #<its name> (#ttl, #d3), so ExpressionAttributeNames is
// derived from the text and no attribute can collide with one of DynamoDB's
// reserved words; a value is :<what it is> (:now, :ip_cut, :nonce). The
// strings and names are made once, in New, and shared by all requests, which
// never write them (the SDK only reads its inputs); a request makes only its
// own ExpressionAttributeValues. Built per request with the SDK's expression
// builder they cost a send about 900 allocations and 90 µs (BENCHMARKS.md
// §1).
//
// The text keeps the spacing and parentheses the SDK's builder wrote when it
// made these expressions, down to the newline that ends an update, so the
// requests are the ones sent before (TestWireRequests).

// expr is one expression of the store: its strings, nil for those it lacks,
// its ExpressionAttributeNames and its own constant values (the :zero of a
// slot shift, the :one of a count), the same in every request. All read only.
type expr struct {
	update, condition, projection *string
	names                         map[string]string
	consts                        map[string]types.AttributeValue
}

var (
	namePlaceholder  = regexp.MustCompile(`#[0-9A-Za-z_]+`)
	valuePlaceholder = regexp.MustCompile(`:[0-9A-Za-z_]+`)
)

// constants are the values an expression may name as constants; newExpr
// keeps those its text uses (DynamoDB refuses a value no expression uses).
var constants = map[string]types.AttributeValue{
	":zero": num(0), // a slot without an event, a fresh count
	":one":  num(1), // a count's step
}

// newExpr makes the expression of the strings update, condition and
// projection ("" for none). more are constants of this store (limits).
func newExpr(update, condition, projection string, more map[string]types.AttributeValue) expr {
	var e expr
	var text string
	for _, f := range []struct {
		s   string
		dst **string
	}{{update, &e.update}, {condition, &e.condition}, {projection, &e.projection}} {
		if f.s != "" {
			*f.dst = aws.String(f.s)
			text += f.s + " "
		}
	}
	for _, p := range namePlaceholder.FindAllString(text, -1) {
		if e.names == nil {
			e.names = map[string]string{}
		}
		e.names[p] = p[1:]
	}
	for _, p := range valuePlaceholder.FindAllString(text, -1) {
		v, ok := constants[p]
		if m, found := more[p]; found {
			v, ok = m, true
		}
		if ok {
			if e.consts == nil {
				e.consts = map[string]types.AttributeValue{}
			}
			e.consts[p] = v
		}
	}
	return e
}

// values returns the ExpressionAttributeValues of one request of e: the
// request's own values m with e's constants added.
func (e *expr) values(m map[string]types.AttributeValue) map[string]types.AttributeValue {
	maps.Copy(m, e.consts)
	return m
}

// and is the condition "every one of cs holds".
func and(cs ...string) string {
	return "(" + strings.Join(cs, ") AND (") + ")"
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

// The rolling windows: the slots prefix0..prefix{n-1} of an item hold the
// times of its last n events, oldest first; a missing item or slot reads as
// zero, "no event".

// shift is the SET actions that accept an event at :now:
//
//	#d0 = if_not_exists(#d1, :zero), …, #d{n-2} = if_not_exists(#d{n-1}, :zero), #d{n-1} = :now
//
// Every right-hand side reads the item as it was before the update, so the
// slots move one place towards the old end and the oldest falls out. Nothing
// is read first.
func shift(prefix string, n int) string {
	var b strings.Builder
	for i := range n - 1 {
		fmt.Fprintf(&b, "#%s%d = if_not_exists(#%s%d, :zero), ", prefix, i, prefix, i+1)
	}
	fmt.Fprintf(&b, "#%s%d = :now", prefix, n-1)
	return b.String()
}

// unshift is the SET actions that undo shift: the newest slot is dropped and
// a zero enters at the old end. The value the shift dropped had left the
// window (that is why the event was accepted), so the zero is equivalent to
// it.
func unshift(prefix string, n int) string {
	var b strings.Builder
	for i := n - 1; i > 0; i-- {
		fmt.Fprintf(&b, "#%s%d = if_not_exists(#%s%d, :zero), ", prefix, i, prefix, i-1)
	}
	fmt.Fprintf(&b, "#%s0 = :zero", prefix)
	return b.String()
}

// olderThan is the condition "slot i holds no event newer than cut" (a
// value placeholder): either it was never set or its event is at or before
// the cutoff.
func olderThan(prefix string, i int, cut string) string {
	slot := "#" + slotName(prefix, i)
	return fmt.Sprintf("(attribute_not_exists (%s)) OR (%s <= %s)", slot, slot, cut)
}

// slotsOf reads the n slots of a rolling window from an item returned by
// DynamoDB (ALL_OLD). A missing item or slot is zero, "no event". Exactly the
// slots the condition expressions look at are read, so Judge sees what the
// conditions saw.
func slotsOf(item map[string]types.AttributeValue, prefix string, n int) verification.Slots {
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
