// Package dynamotest helps tests talk to DynamoDB Local: a client with the
// stand-in's credentials, fresh tables created from template.yaml (so tests
// and deploys share one schema), and a middleware that counts round trips.
package dynamotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/awslabs/goformation/v7"
	cfn "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"gopkg.in/yaml.v3"
)

// NewClient returns a DynamoDB client for the endpoint of DynamoDB Local
// (us-east-1, static credentials test/test: DynamoDB Local keeps separate
// tables per access key and region, so every client must use the same ones).
func NewClient(endpoint string, opts ...func(*dynamodb.Options)) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, opts...)
}

// Tables maps the logical id of each AWS::DynamoDB::Table of template.yaml
// ("VerificationTable", "UsersTable") to the name of the table created for it.
type Tables map[string]string

// StartTables creates fresh tables from template.yaml on the DynamoDB Local
// at endpoint, under a prefix unique to this test (so tests, also parallel
// ones, never share a table), and deletes them when the test ends. The client
// is built with opts.
func StartTables(t testing.TB, endpoint string, opts ...func(*dynamodb.Options)) (*dynamodb.Client, Tables) {
	t.Helper()
	client := NewClient(endpoint, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tables, err := CreateTables(ctx, client, Prefix(t))
	if err != nil {
		t.Fatalf("create tables: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range tables {
			if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
				t.Logf("delete table %s: %v", name, err)
			}
		}
	})
	return client, tables
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Prefix returns a table-name prefix unique to this run of t: part of the
// test's name (for reading DynamoDB Local's logs) and random bits.
func Prefix(t testing.TB) string {
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-", name, hex.EncodeToString(b))
}

// CreateTables creates every table of template.yaml, named prefix+logical
// id, with the template's key schema, attribute definitions, billing mode and
// TTL setting, and waits until they are active.
func CreateTables(ctx context.Context, client *dynamodb.Client, prefix string) (Tables, error) {
	defs, err := templateTables()
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(defs))
	for id := range defs {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	tables := Tables{}
	for _, id := range ids {
		name := prefix + id
		in, ttl, err := createInput(name, defs[id])
		if err != nil {
			return tables, fmt.Errorf("table %s: %w", id, err)
		}
		if _, err := client.CreateTable(ctx, in); err != nil {
			return tables, fmt.Errorf("create table %s: %w", name, err)
		}
		tables[id] = name
		w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay = 50 * time.Millisecond
			o.MaxDelay = time.Second
		})
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 30*time.Second); err != nil {
			return tables, fmt.Errorf("wait for table %s: %w", name, err)
		}
		if ttl != nil {
			if _, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
				TableName:               aws.String(name),
				TimeToLiveSpecification: ttl,
			}); err != nil {
				return tables, fmt.Errorf("enable ttl on %s: %w", name, err)
			}
		}
	}
	return tables, nil
}

var parsed struct {
	once sync.Once
	defs map[string]*cfn.Table
	err  error
}

// templateTables returns the tables of template.yaml, parsed once per test
// binary (goformation's parser is not safe to run from parallel tests).
//
// goformation does not know every property of newer SAM and CloudFormation
// resources (an API's GatewayResponses, a function's LoggingConfig) and then
// rejects the whole template. Only the tables matter here, so the other
// resources are dropped before goformation sees the template; the tables
// themselves, and the sections their intrinsics may refer to, pass through
// unchanged.
func templateTables() (map[string]*cfn.Table, error) {
	parsed.once.Do(func() {
		path, err := TemplatePath()
		if err != nil {
			parsed.err = err
			return
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			parsed.err = err
			return
		}
		only, err := onlyTables(raw)
		if err != nil {
			parsed.err = fmt.Errorf("read %s: %w", path, err)
			return
		}
		tmpl, err := goformation.ParseYAML(only)
		if err != nil {
			parsed.err = fmt.Errorf("parse %s: %w", path, err)
			return
		}
		parsed.defs = tmpl.GetAllDynamoDBTableResources()
		if len(parsed.defs) == 0 {
			parsed.err = fmt.Errorf("%s defines no AWS::DynamoDB::Table", path)
		}
	})
	return parsed.defs, parsed.err
}

// onlyTables returns the template with its AWS::DynamoDB::Table resources
// and the sections intrinsics can refer to (Parameters, Conditions,
// Mappings); the YAML tags of short-form intrinsics (!Ref ...) are kept.
func onlyTables(raw []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a YAML mapping")
	}
	keep := map[string]bool{"AWSTemplateFormatVersion": true, "Parameters": true, "Conditions": true, "Mappings": true, "Resources": true}
	top := doc.Content[0]
	out := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if !keep[k.Value] {
			continue
		}
		if k.Value == "Resources" && v.Kind == yaml.MappingNode {
			tables := &yaml.Node{Kind: yaml.MappingNode}
			for j := 0; j+1 < len(v.Content); j += 2 {
				if resourceType(v.Content[j+1]) == "AWS::DynamoDB::Table" {
					tables.Content = append(tables.Content, v.Content[j], v.Content[j+1])
				}
			}
			v = tables
		}
		out.Content = append(out.Content, k, v)
	}
	return yaml.Marshal(out)
}

func resourceType(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "Type" {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// createInput maps a template table to CreateTable (and its TTL setting,
// which DynamoDB takes in a separate call). Features that would change how
// the table behaves and that are not mapped here are refused, so that the
// test tables can never silently differ from the deployed ones.
func createInput(name string, def *cfn.Table) (*dynamodb.CreateTableInput, *types.TimeToLiveSpecification, error) {
	if len(def.GlobalSecondaryIndexes) > 0 || len(def.LocalSecondaryIndexes) > 0 {
		return nil, nil, errors.New("secondary indexes are not mapped by dynamotest yet")
	}
	in := &dynamodb.CreateTableInput{TableName: aws.String(name)}
	for _, a := range def.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName),
			AttributeType: types.ScalarAttributeType(a.AttributeType),
		})
	}
	for _, k := range def.KeySchema {
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{
			AttributeName: aws.String(k.AttributeName),
			KeyType:       types.KeyType(k.KeyType),
		})
	}
	switch mode := aws.ToString(def.BillingMode); mode {
	case "PAY_PER_REQUEST":
		in.BillingMode = types.BillingModePayPerRequest
	case "", "PROVISIONED": // CloudFormation's default is PROVISIONED
		in.BillingMode = types.BillingModeProvisioned
		if def.ProvisionedThroughput == nil {
			return nil, nil, errors.New("PROVISIONED billing without ProvisionedThroughput")
		}
		in.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  aws.Int64(int64(def.ProvisionedThroughput.ReadCapacityUnits)),
			WriteCapacityUnits: aws.Int64(int64(def.ProvisionedThroughput.WriteCapacityUnits)),
		}
	default:
		return nil, nil, fmt.Errorf("unknown BillingMode %q", mode)
	}
	var ttl *types.TimeToLiveSpecification
	if s := def.TimeToLiveSpecification; s != nil && s.Enabled {
		ttl = &types.TimeToLiveSpecification{AttributeName: s.AttributeName, Enabled: aws.Bool(true)}
	}
	return in, ttl, nil
}

// TemplatePath finds template.yaml at the module root: the nearest directory
// above the working directory (a test's package directory) with a go.mod.
func TemplatePath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "template.yaml"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// CallCounter counts the requests a client sends, per operation name
// ("TransactWriteItems", "UpdateItem", ...): the round trips of the code
// under test. Add it to a client with Option. It is safe for concurrent use.
type CallCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// Option returns the client option that installs the counter. It counts in
// the Finalize step after the SDK's retry middleware, so every attempt that
// goes out on the wire counts, retries included.
func (c *CallCounter) Option() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("dynamotest.CallCounter",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					c.add(middleware.GetOperationName(ctx))
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

func (c *CallCounter) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[op]++
}

// Counts returns a copy of the counts so far.
func (c *CallCounter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Reset sets every count back to zero.
func (c *CallCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = nil
}
