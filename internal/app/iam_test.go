package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
)

// dynamoActionsFile lists, per table of template.yaml, the IAM actions the
// service's DynamoDB calls need. TestDynamoDBActions checks it against the
// calls the service really makes; the deploy test checks that the
// template's policy grants exactly these. A new call fails the first until
// the list, and so the template, say it.
const dynamoActionsFile = "../deploy/testdata/dynamodb-actions.json"

// actionRecorder records the IAM action of every DynamoDB call, per table
// name: a transaction authorises each of its items on its own table
// (Put -> PutItem, Update -> UpdateItem, Delete -> DeleteItem,
// ConditionCheck -> ConditionCheckItem).
type actionRecorder struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // table -> action
}

func (r *actionRecorder) option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("app.actionRecorder",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					r.record(middleware.GetOperationName(ctx), in.Parameters)
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	}
}

func (r *actionRecorder) record(op string, params any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]map[string]bool{}
	}
	add := func(table *string, action string) {
		name := "(no table)"
		if table != nil {
			name = *table
		}
		if r.seen[name] == nil {
			r.seen[name] = map[string]bool{}
		}
		r.seen[name]["dynamodb:"+action] = true
	}
	switch in := params.(type) {
	case *dynamodb.GetItemInput:
		add(in.TableName, op)
	case *dynamodb.PutItemInput:
		add(in.TableName, op)
	case *dynamodb.UpdateItemInput:
		add(in.TableName, op)
	case *dynamodb.DeleteItemInput:
		add(in.TableName, op)
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range in.TransactItems {
			switch {
			case it.Put != nil:
				add(it.Put.TableName, "PutItem")
			case it.Update != nil:
				add(it.Update.TableName, "UpdateItem")
			case it.Delete != nil:
				add(it.Delete.TableName, "DeleteItem")
			case it.ConditionCheck != nil:
				add(it.ConditionCheck.TableName, "ConditionCheckItem")
			}
		}
	default:
		add(nil, op) // an operation this recorder does not know: fails the comparison
	}
}

// TestDynamoDBActions runs every kind of request through the service on
// DynamoDB Local (sends of each target, refusals, a send with a captcha
// token, captcha issue and solve, right, wrong and spent codes) and checks
// that the IAM actions of the calls it makes, per table, are exactly those
// of dynamoActionsFile, which the template's policy must grant (the deploy
// test): no call the policy forbids, no grant no call uses.
func TestDynamoDBActions(t *testing.T) {
	var rec actionRecorder
	s := apptest.NewDynamo(t, nil, []string{"existing@example.com"}, app.Options{DynamoOptions: []func(*dynamodb.Options){rec.option()}})
	steps := []struct {
		ip, path, body string
		header         map[string]string
	}{
		{"192.0.2.1", sendPath, `{"target":"ANY","email":"iam-any@example.com"}`, nil},
		{"192.0.2.2", sendPath, `{"target":"USER","email":"existing@example.com"}`, nil},
		{"192.0.2.3", sendPath, `{"target":"NOT_USER","email":"iam-new@example.com"}`, nil},
		{"192.0.2.4", sendPath, `{"target":"USER","email":"iam-nobody@example.com"}`, nil},
		{"192.0.2.5", sendPath, `{"target":"USER","email":"existing@example.com"}`, nil},
	}
	for _, st := range steps {
		s.Do(t, "POST", st.path, st.ip, st.body, st.header)
	}
	// A right, a wrong and a spent code.
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.6", `{"target":"ANY","email":"iam-verify@example.com"}`, nil); st != 200 {
		t.Fatalf("send: %d %v", st, b)
	} else {
		id, code := b["verification_id"].(string), s.LastCode(t)
		for _, c := range []string{"000000x", code, code} {
			s.Do(t, "POST", verifyPath, "192.0.2.6", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, id, c), nil)
		}
	}
	// Captcha issue, solve, and a send that spends the captcha token.
	tok := solveCaptcha(t, s, "192.0.2.7")
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.7", `{"target":"ANY","email":"iam-captcha@example.com"}`, map[string]string{"x-captcha-token": tok}); st != 200 {
		t.Fatalf("send with a captcha token: %d %v", st, b)
	}

	raw, err := os.ReadFile(dynamoActionsFile)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string][]string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	logical := map[string]string{s.Config.VerificationTable: "VerificationTable", s.Config.UsersTable: "UsersTable"}
	got := map[string][]string{}
	rec.mu.Lock()
	for table, actions := range rec.seen {
		name, ok := logical[table]
		if !ok {
			name = table
		}
		for a := range actions {
			got[name] = append(got[name], a)
		}
	}
	rec.mu.Unlock()
	for name := range got {
		slices.Sort(got[name])
	}
	for name, acts := range want {
		slices.Sort(acts)
		if !slices.Equal(got[name], acts) {
			t.Errorf("%s: the service calls %v, %s lists %v", name, got[name], dynamoActionsFile, acts)
		}
	}
	for name, acts := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("calls %v on %s, which %s does not list", acts, name, dynamoActionsFile)
		}
	}
}
