//go:build bench

package app_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// TestFloor measures how far a send and a verify through the whole service
// are from the floor: one bare DynamoDB call of the same shape, made with the
// SDK directly, in the same run. DynamoDB Local is the bottleneck of any
// local run, so only the ratio says something about the service's own cost.
//
// The floor calls are the service's own: a dry run of the same kind of
// request (with a context that makes the app's DynamoDB client hand its
// input over instead of sending it; reads go out) captures the exact calls
// it would make, on fresh items, and the bare client sends those.
// Request and floor samples alternate (and which goes first alternates), so
// whatever else the machine does hits both alike.
//
// A benchmark, not a test: it is built only with the bench tag (make bench
// runs it) and asserts nothing about time. BENCH_FLOOR_SAMPLES sets the samples
// per kind (default 300, after 30 of warm-up).
func TestFloor(t *testing.T) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("BENCH_FLOOR_SAMPLES")); err == nil && v > 0 {
		n = v
	}
	const warm = 30
	total := warm + n

	users := make([]string, 0, 2*total)
	for i := range total {
		users = append(users, fmt.Sprintf("floor-user-req-%d@example.com", i), fmt.Sprintf("floor-user-dry-%d@example.com", i))
	}
	// The SMS budget raised out of the way (its counters stay in every SMS
	// transaction): the default 1,000 an hour, split over its shards, runs
	// out within the samples of one kind.
	a := apptest.NewDynamo(t, map[string]string{"SMS_HOURLY_BUDGET": "1000000"}, nil, app.Options{DynamoOptions: []func(*dynamodb.Options){dryRunOption}}).App
	bare := dynamotest.NewClient(testenv.Get(t, testenv.DynamoDB))
	benchPutUsers(t, bare, benchUsersTable(t, a.Config.UsersTable), users)
	ctx := context.Background()

	type result struct {
		kind           string
		request, floor []time.Duration
	}
	var results []result
	measure := func(kind string, request func(i int) error, prepare func(i int) func() error) {
		floors := make([]func() error, total)
		for i := range floors {
			floors[i] = prepare(i)
		}
		r := result{kind: kind}
		for i := range total {
			var dr, df time.Duration
			timeRequest := func() {
				t0 := time.Now()
				if err := request(i); err != nil {
					t.Fatalf("%s: request %d: %v", kind, i, err)
				}
				dr = time.Since(t0)
			}
			timeFloor := func() {
				t0 := time.Now()
				if err := floors[i](); err != nil {
					t.Fatalf("%s: floor %d: %v", kind, i, err)
				}
				df = time.Since(t0)
			}
			if i%2 == 0 {
				timeRequest()
				timeFloor()
			} else {
				timeFloor()
				timeRequest()
			}
			if i >= warm {
				r.request = append(r.request, dr)
				r.floor = append(r.floor, df)
			}
		}
		results = append(results, r)
	}

	ok := func(status int, body []byte) error {
		if status != 200 {
			return fmt.Errorf("answer %d %s", status, body)
		}
		return nil
	}

	// A send ANY: the transaction, with the user lookup running beside it.
	measure("send ANY", func(i int) error {
		resp := benchServe(ctx, a, sendRoute, benchAddr("198.18", i), fmt.Sprintf(`{"target":"ANY","email":"floor-any-req-%d@example.com"}`, i))
		return ok(resp.Status, resp.Body)
	}, func(i int) func() error {
		in := dryRun(t, a, sendRoute, benchAddr("198.19", i), fmt.Sprintf(`{"target":"ANY","email":"floor-any-dry-%d@example.com"}`, i)).transaction(t)
		return func() error { _, err := bare.TransactWriteItems(ctx, in); return err }
	})

	// A send USER: the transaction carries the user check; nothing beside it.
	measure("send USER", func(i int) error {
		resp := benchServe(ctx, a, sendRoute, benchAddr("198.20", i), fmt.Sprintf(`{"target":"USER","email":"floor-user-req-%d@example.com"}`, i))
		return ok(resp.Status, resp.Body)
	}, func(i int) func() error {
		in := dryRun(t, a, sendRoute, benchAddr("198.21", i), fmt.Sprintf(`{"target":"USER","email":"floor-user-dry-%d@example.com"}`, i)).transaction(t)
		return func() error { _, err := bare.TransactWriteItems(ctx, in); return err }
	})

	// A verify of a right code: a GetItem and one transaction (count first,
	// then compare), then the token is signed. Each verify comes from its own
	// IP, so VERIFY_IP_HOURLY_LIMIT never refuses one.
	type pair struct{ id, code string }
	reqPairs := make([]pair, total)
	for i := range reqPairs {
		reqPairs[i].id, reqPairs[i].code = benchSendFor(t, a, fmt.Sprintf("floor-verify-req-%d@example.com", i), "ANY", benchAddr("198.22", i))
	}
	measure("verify (right code)", func(i int) error {
		resp := benchServe(ctx, a, verifyRoute, benchAddr("198.24", i), benchVerifyBody(reqPairs[i].id, reqPairs[i].code))
		return ok(resp.Status, resp.Body)
	}, func(i int) func() error {
		id, code := benchSendFor(t, a, fmt.Sprintf("floor-verify-dry-%d@example.com", i), "ANY", benchAddr("198.23", i))
		c := dryRun(t, a, verifyRoute, benchAddr("198.25", i), benchVerifyBody(id, code))
		get, tx := onlyInput[*dynamodb.GetItemInput](t, c), c.transaction(t)
		return func() error {
			if _, err := bare.GetItem(ctx, get); err != nil {
				return err
			}
			_, err := bare.TransactWriteItems(ctx, tx)
			return err
		}
	})

	// An SMS send USER with and without the SMS pumping counters (the
	// prefix's breaker item and a budget shard in the same transaction): the
	// floor is the app's own transaction, counters included, so the ratio
	// says what the service adds around them and the floors what they add
	// to DynamoDB's work. Each number has its own prefix (86 + 13xxx), so the
	// unverified sends never trip the breaker.
	phone := func(i, seq int) string { return fmt.Sprintf("+8613%03d%06d", i%1000, seq) }
	smsUsers := make([]string, 0, 2*total)
	for i := range total {
		smsUsers = append(smsUsers, phone(i, i), phone(i, 500000+i))
	}
	off := apptest.NewDynamo(t, map[string]string{"SMS_HOURLY_BUDGET": "0", "PUMPING_UNVERIFIED_LIMIT": "0"}, nil,
		app.Options{DynamoOptions: []func(*dynamodb.Options){dryRunOption}}).App
	benchPutUsers(t, bare, benchUsersTable(t, a.Config.UsersTable), smsUsers)
	benchPutUsers(t, bare, benchUsersTable(t, off.Config.UsersTable), smsUsers)
	for _, c := range []struct {
		kind     string
		app      *app.App
		net, dry string
	}{{"send SMS, no pumping", off, "198.25", "198.26"}, {"send SMS, pumping", a, "198.27", "198.28"}} {
		measure(c.kind, func(i int) error {
			resp := benchServe(ctx, c.app, sendRoute, benchAddr(c.net, i), fmt.Sprintf(`{"target":"USER","phone_number":%q}`, phone(i, i)))
			return ok(resp.Status, resp.Body)
		}, func(i int) func() error {
			in := dryRun(t, c.app, sendRoute, benchAddr(c.dry, i), fmt.Sprintf(`{"target":"USER","phone_number":%q}`, phone(i, 500000+i))).transaction(t)
			return func() error { _, err := bare.TransactWriteItems(ctx, in); return err }
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Distance from the floor: DynamoDB Local, %d samples per column after %d of warm-up, request and floor interleaved\n", n, warm)
	fmt.Fprintf(&b, "  %-22s %12s %12s %12s %12s %10s\n", "kind", "request p50", "request p99", "floor p50", "floor p99", "p50 ratio")
	for _, r := range results {
		rp50, rp99 := benchPercentile(r.request, 50), benchPercentile(r.request, 99)
		fp50, fp99 := benchPercentile(r.floor, 50), benchPercentile(r.floor, 99)
		fmt.Fprintf(&b, "  %-22s %12s %12s %12s %12s %10.2f\n", r.kind, fmtMS(rp50), fmtMS(rp99), fmtMS(fp50), fmtMS(fp99), float64(rp50)/float64(fp50))
	}
	t.Log("\n" + b.String())
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// percentile is the p-th percentile (nearest rank) of ds.
func benchPercentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	k := (len(s)*p + 99) / 100
	return s[max(k-1, 0)]
}

// usersTable checks the app runs on a users table and returns its name.
func benchUsersTable(t *testing.T, name string) string {
	t.Helper()
	if name == "" {
		t.Fatal("the app has no users table")
	}
	return name
}

func benchPutUsers(t *testing.T, c *dynamodb.Client, table string, users []string) {
	t.Helper()
	for start := 0; start < len(users); start += 25 {
		var reqs []types.WriteRequest
		for _, u := range users[start:min(start+25, len(users))] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{
				Item: map[string]types.AttributeValue{"identity": &types.AttributeValueMemberS{Value: u}},
			}})
		}
		items := map[string][]types.WriteRequest{table: reqs}
		for len(items) > 0 {
			out, err := c.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{RequestItems: items})
			if err != nil {
				t.Fatal(err)
			}
			items = out.UnprocessedItems
		}
	}
}

// The dry run: a request served with a context carrying a *captured makes
// the app's DynamoDB client record each input it is given and answer
// errDryRun instead of sending it (before signing and retries), so the
// request changes nothing in the tables.

var errDryRun = errors.New("dry run: not sent")

type capturedKey struct{}

type captured struct {
	mu     sync.Mutex
	inputs []any
}

func dryRunOption(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("bench.dryRun",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c, ok := ctx.Value(capturedKey{}).(*captured)
				if !ok {
					return next.HandleInitialize(ctx, in)
				}
				c.mu.Lock()
				c.inputs = append(c.inputs, in.Parameters)
				c.mu.Unlock()
				// Reads change nothing: a verify reads its code before
				// the transaction that counts the guess, so it goes out.
				if _, read := in.Parameters.(*dynamodb.GetItemInput); read {
					return next.HandleInitialize(ctx, in)
				}
				return middleware.InitializeOutput{}, middleware.Metadata{}, errDryRun
			}), middleware.Before)
	})
}

// dryRun serves a request without letting it reach DynamoDB and returns the
// inputs its calls would have sent.
func dryRun(t *testing.T, a *app.App, path, ip, body string) *captured {
	t.Helper()
	c := &captured{}
	benchServe(context.WithValue(context.Background(), capturedKey{}, c), a, path, ip, body)
	return c
}

// transaction is the captured TransactWriteItems input.
func (c *captured) transaction(t *testing.T) *dynamodb.TransactWriteItemsInput {
	t.Helper()
	return onlyInput[*dynamodb.TransactWriteItemsInput](t, c)
}

func onlyInput[T any](t *testing.T, c *captured) T {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var found []T
	for _, in := range c.inputs {
		if v, ok := in.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("dry run captured %d inputs of type %T (all: %d)", len(found), zero, len(c.inputs))
	}
	return found[0]
}
