// Package dynamo is the DynamoDB store: codes, rolling limits and captchas in
// one table (VERIFICATION_TABLE), users in another (USERS_TABLE).
//
// Every rule is a condition expression, evaluated by DynamoDB atomically with
// the write it guards; nothing is read to decide and then written. A refusal
// is named from the old item DynamoDB hands back with the failed condition
// (ReturnValuesOnConditionCheckFailure ALL_OLD), so it costs no extra read.
// TTL deletion lags (up to days in AWS), so every condition checks expiry
// itself and no expired item is ever taken for a live one.
//
// Items of the verification table (partition key "pk", TTL attribute "ttl",
// times in Unix milliseconds unless said otherwise):
//
//	tgt#<handle>  d0..d{N-1}: the last N accepted sends, oldest first
//	              (N = Limits.TargetCap; cooldown and daily cap), and the
//	              target's current code: nonce, code_hash, attempts,
//	              expires_at, identity, channel, target, used_at (absent
//	              until used). A new send overwrites the code, so an older
//	              verification_id can no longer verify.
//	ip#<addr>     h0..h{M-1}: the last M accepted sends (M = Limits.IPCap)
//	vip#<addr>    h0..h{V-1}: the last V verifies of live codes
//	              (V = Limits.VerifyIPCap)
//	cip#<addr>    h0..h{C-1}: the last C captcha images (C = Limits.CaptchaIPCap)
//	cap#<id>      an image captcha: answer_hash, attempts, expires_at, used_at
//	ctok#<id>     a captcha token's spent uses: uses
//	pfx#<prefix>  SMS pumping breaker counters, smsb#<n> SMS budget shards
//	              (pumping.go)
//
// "ttl" is Unix seconds, set to when the item stops mattering.
package dynamo

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/verification"
)

// Client is the part of *dynamodb.Client the store uses.
type Client interface {
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// Attribute names that Go code writes or reads by name. The expressions
// spell the rest as #placeholders of the same name (#nonce is nonce), and
// the item structs (codeItem, challengeItem) carry them as tags.
const (
	attrPK         = "pk"
	attrIdentity   = "identity" // also the users table's key
	attrAnswerHash = "answer_hash"
	attrAttempts   = "attempts"
	attrExpiresAt  = "expires_at"
	attrTTL        = "ttl" // Unix seconds; the table's TTL attribute

	targetSlot = "d" // d0..d{N-1}
	ipSlot     = "h" // h0..h{M-1}
)

// Key prefixes of the verification table's items.
const (
	prefixTarget    = "tgt#"
	prefixIP        = "ip#"
	prefixVerifyIP  = "vip#"
	prefixCaptchaIP = "cip#"
	prefixChallenge = "cap#"
	prefixToken     = "ctok#"
)

// maxSlots bounds the caps: each slot costs about 36 characters of an update
// expression ("#d12 = if_not_exists(#d13, :zero), "), and DynamoDB limits an
// expression to 4 KB (TestLargestExpressions).
const maxSlots = 100

// Store is the DynamoDB store. It implements verification.Store and
// captcha.Store.
type Store struct {
	db           Client
	table, users *string // shared by all requests: read only
	limits       verification.Limits

	// The expressions, written once by New (expr.go): a send's IP and
	// target updates with and without the captcha gates; the IP update
	// alone is also the budget a user refusal spends.
	ip, ipGated, tgt, tgtGated expr
	tokenUse                   expr // a captcha token spends a use
	release                    expr
	absent                     expr // the item must not exist yet
	user, noUser               expr // the user checks of USER and NOT_USER
	exists                     expr // the projection of Exists
	readCode                   expr // the projection of a verify's read
	verifyIP, captchaIP        expr // the verify and captcha image budgets
	countWrong, countRight     expr // a verify's count, with the consume for a right code
	countSolve, solve          expr // a captcha answer's count, then the consume of a right one

	pump *pumpingExpr // the SMS pumping defences (preparePumping)
}

var (
	_ verification.Store = (*Store)(nil)
	_ captcha.Store      = (*Store)(nil)
)

// Options are the tables a store works on and the rules it enforces.
type Options struct {
	// Table holds codes, limits and captchas; UsersTable holds the users,
	// items keyed by "identity".
	Table, UsersTable string
	// Limits: TargetCap, IPCap, VerifyIPCap and CaptchaIPCap must be
	// between 1 and 100, as each is that many attributes on one item;
	// CaptchaTokenUses must be between 1 and 100 too.
	Limits verification.Limits
	// Pumping are the SMS pumping defences (zero: all off).
	Pumping verification.Pumping
}

// New returns a store on db that enforces o.
func New(db Client, o Options) (*Store, error) {
	table, usersTable, limits := o.Table, o.UsersTable, o.Limits
	for _, c := range []struct {
		name string
		n    int
	}{
		{"TargetCap", limits.TargetCap}, {"IPCap", limits.IPCap},
		{"VerifyIPCap", limits.VerifyIPCap}, {"CaptchaIPCap", limits.CaptchaIPCap},
		{"CaptchaTokenUses", limits.CaptchaTokenUses},
	} {
		if c.n < 1 || c.n > maxSlots {
			return nil, fmt.Errorf("dynamo: %s is %d, want 1..%d", c.name, c.n, maxSlots)
		}
	}
	if table == "" || usersTable == "" {
		return nil, fmt.Errorf("dynamo: table names are required")
	}
	s := &Store{db: db, table: aws.String(table), users: aws.String(usersTable), limits: limits}
	s.prepareReserve()
	s.prepareConsume()
	s.prepareCaptcha()
	s.prepareUsers()
	if err := s.preparePumping(o.Pumping); err != nil {
		return nil, err
	}
	return s, nil
}

// prepareUsers writes the expressions of the users table.
func (s *Store) prepareUsers() {
	// USER needs the user item to exist, NOT_USER needs it absent (the
	// checks of a send's transaction, see reserveTx).
	s.user = newExpr("", "attribute_exists (#identity)", "", nil)
	s.noUser = newExpr("", "attribute_not_exists (#identity)", "", nil)
	// Exists reads the key alone.
	s.exists = newExpr("", "", "#identity", nil)
}

// Exists reports whether a user item exists for identity: the lookup Reserve
// runs beside an ANY send's transaction. The read is
// strongly consistent, so a user created a moment ago is seen, and projects
// only the key, so a large user item costs nothing extra.
func (s *Store) Exists(ctx context.Context, identity string) (bool, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                s.users,
		Key:                      map[string]types.AttributeValue{attrIdentity: str(identity)},
		ProjectionExpression:     s.exists.projection,
		ExpressionAttributeNames: s.exists.names,
		ConsistentRead:           aws.Bool(true),
	})
	if err != nil {
		return false, storeError("users: get", err)
	}
	return out.Item != nil, nil
}
