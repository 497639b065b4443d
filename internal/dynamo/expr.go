package dynamo

import (
	"fmt"
	"strconv"
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

// build turns b into the expression strings and their placeholder maps. It
// fails only on a builder this package got wrong, so its error is a bug
// (internal_error), never a refusal.
func build(op string, b expression.Builder) (expression.Expression, error) {
	e, err := b.Build()
	if err != nil {
		return e, fmt.Errorf("dynamo: %s: build expression: %w", op, err)
	}
	return e, nil
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
// first ("d0".."d{n-1}"). They depend only on the limits, so New makes them
// once.
type window []expression.NameBuilder

func newWindow(prefix string, n int) window {
	w := make(window, n)
	for i := range w {
		w[i] = expression.Name(slotName(prefix, i))
	}
	return w
}

// zero is the slot value "no event".
var zero = expression.Value(0)

// shift adds to u the SET actions that accept an event at now:
//
//	d0 = if_not_exists(d1, 0), …, d{n-2} = if_not_exists(d{n-1}, 0), d{n-1} = now
//
// Every right-hand side reads the item as it was before the update, so the
// slots move one place towards the old end and the oldest falls out; a
// missing item (or slot) reads as zero, "no event". Nothing is read first.
func (w window) shift(u expression.UpdateBuilder, now int64) expression.UpdateBuilder {
	n := len(w)
	for i := 0; i < n-1; i++ {
		u = u.Set(w[i], w[i+1].IfNotExists(zero))
	}
	return u.Set(w[n-1], expression.Value(now))
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
func (w window) olderThan(i int, cut int64) expression.ConditionBuilder {
	return w[i].AttributeNotExists().Or(w[i].LessThanEqual(expression.Value(cut)))
}

// slotsOf reads the n slots of a rolling window from an item returned by
// DynamoDB (ALL_OLD). A missing item or slot is zero, "no event". Exactly the
// slots the condition expressions look at are read, so Judge sees what the
// conditions saw.
func slotsOf(item map[string]types.AttributeValue, prefix string, n int) verification.Slots {
	if item == nil {
		return verification.Slots(nil).Resize(n)
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
