package deploy

import (
	"maps"
	"slices"
	"strconv"
	"testing"
)

// The tables, the function and its environment, the secret and logs, and the
// stack's outputs.

func TestTables(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		tests := []struct {
			name, key, ttl, condition string
			created                   bool
		}{
			{name: "VerificationTable", key: "pk", ttl: "ttl", created: true},
			{name: "UsersTable", key: "identity", condition: "CreateUsersTable", created: d.params["UsersTableName"] == ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tbl, err := d.tmpl.GetDynamoDBTableWithName(tt.name)
				if err != nil {
					t.Fatal(err)
				}
				if got := tbl.AWSCloudFormationCondition; got != tt.condition {
					t.Errorf("Condition = %q, want %q", got, tt.condition)
				}
				if got := d.exists(tbl.AWSCloudFormationCondition); got != tt.created {
					t.Errorf("created = %v, want %v (UsersTableName=%q)", got, tt.created, d.params["UsersTableName"])
				}
				if got := deref(tbl.BillingMode); got != "PAY_PER_REQUEST" {
					t.Errorf("BillingMode = %q, want PAY_PER_REQUEST", got)
				}
				if len(tbl.KeySchema) != 1 || tbl.KeySchema[0].AttributeName != tt.key || tbl.KeySchema[0].KeyType != "HASH" {
					t.Errorf("KeySchema = %+v, want one HASH key %q", tbl.KeySchema, tt.key)
				}
				if len(tbl.AttributeDefinitions) != 1 || tbl.AttributeDefinitions[0].AttributeName != tt.key || tbl.AttributeDefinitions[0].AttributeType != "S" {
					t.Errorf("AttributeDefinitions = %+v, want %q of type S", tbl.AttributeDefinitions, tt.key)
				}
				if tbl.PointInTimeRecoverySpecification == nil || !deref(tbl.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled) {
					t.Error("point-in-time recovery is not enabled")
				}
				if tbl.SSESpecification == nil || !tbl.SSESpecification.SSEEnabled {
					t.Error("SSE is not enabled")
				}
				if tt.ttl == "" {
					if tbl.TimeToLiveSpecification != nil {
						t.Errorf("TTL = %+v, want none", tbl.TimeToLiveSpecification)
					}
				} else if ttl := tbl.TimeToLiveSpecification; ttl == nil {
					t.Errorf("no TTL, want attribute %q enabled", tt.ttl)
				} else if deref(ttl.AttributeName) != tt.ttl || !ttl.Enabled {
					t.Errorf("TTL = %q enabled %v, want %q enabled", deref(ttl.AttributeName), ttl.Enabled, tt.ttl)
				}
				if tbl.AWSCloudFormationDeletionPolicy != "Retain" || tbl.AWSCloudFormationUpdateReplacePolicy != "Retain" {
					t.Errorf("DeletionPolicy/UpdateReplacePolicy = %q/%q, want Retain/Retain", tbl.AWSCloudFormationDeletionPolicy, tbl.AWSCloudFormationUpdateReplacePolicy)
				}
				if len(tbl.GlobalSecondaryIndexes)+len(tbl.LocalSecondaryIndexes) != 0 {
					t.Error("unexpected secondary indexes")
				}
			})
		}
	})
}

func TestFunction(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		fns := d.tmpl.GetAllServerlessFunctionResources()
		if len(fns) != 1 {
			t.Errorf("%d functions, want exactly one (one warm pool for all routes)", len(fns))
		}
		fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
		if err != nil {
			t.Fatal(err)
		}
		if got := deref(fn.Runtime); got != "provided.al2023" {
			t.Errorf("Runtime = %q, want provided.al2023", got)
		}
		if !slices.Equal(fn.Architectures, []string{"arm64"}) {
			t.Errorf("Architectures = %v, want [arm64]", fn.Architectures)
		}
		if got := deref(fn.Handler); got != "bootstrap" {
			t.Errorf("Handler = %q, want bootstrap", got)
		}
		if fn.CodeUri == nil || deref(fn.CodeUri.String) != "." {
			t.Errorf("CodeUri = %+v, want \".\" (the Makefile builds from the module root)", fn.CodeUri)
		}
		if got := fn.AWSCloudFormationMetadata["BuildMethod"]; got != "makefile" {
			t.Errorf("Metadata.BuildMethod = %v, want makefile", got)
		}
		if got := deref(fn.Timeout); got < 10 || got > 29 {
			t.Errorf("Timeout = %d, want 10..29 s (two provider attempts of 3 s plus DynamoDB, inside API Gateway's 29 s)", got)
		}
		if got := deref(fn.MemorySize); got < 128 {
			t.Errorf("MemorySize = %d, want at least 128", got)
		}
		want, _ := strconv.Atoi(d.params["ReservedConcurrency"])
		if got := deref(fn.ReservedConcurrentExecutions); got != want || want < 1 {
			t.Errorf("ReservedConcurrentExecutions = %d, want the ReservedConcurrency parameter (%d)", got, want)
		}
		if fn.Role != nil {
			t.Errorf("Role = %q: the function must get SAM's role with the inline policies", *fn.Role)
		}
	})
}

func TestEnvironment(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		fn, err := d.tmpl.GetServerlessFunctionWithName("VerificationFunction")
		if err != nil {
			t.Fatal(err)
		}
		if fn.Environment == nil {
			t.Fatal("no Environment")
		}
		usersTable := d.params["UsersTableName"]
		if usersTable == "" {
			usersTable = refPlaceholder("UsersTable")
		}
		want := map[string]string{
			"VERIFICATION_TABLE": refPlaceholder("VerificationTable"),
			"USERS_TABLE":        usersTable,
			"SMS_SENDER":         "sns",
			"KEYS_SECRET_ARN":    refPlaceholder("KeysSecret"),
		}
		for env, param := range envParameter {
			want[env] = d.params[param]
		}
		got := fn.Environment.Variables
		for _, name := range slices.Sorted(maps.Keys(want)) {
			if v, ok := got[name]; !ok {
				t.Errorf("%s missing", name)
			} else if v != want[name] {
				t.Errorf("%s = %q, want %q", name, v, want[name])
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("unexpected variable %s", name)
			}
		}
		for _, forbidden := range []string{"HMAC_KEY", "SIGNING_KEY", "SMTP_URL", "DEV_USERS", "ADDR"} {
			if _, ok := got[forbidden]; ok {
				t.Errorf("%s is set: secrets come from Secrets Manager, and local-only settings stay local", forbidden)
			}
		}
	})
}

// TestWorldsChangeEveryTunable keeps the "every tunable changed" world honest:
// its values must be pairwise distinct or swapped variables would pass.
func TestWorldsChangeEveryTunable(t *testing.T) {
	raw := rawTemplate(t)
	params := parameterValues(t, raw, worlds[2])
	seen := map[string]string{}
	for env, param := range envParameter {
		if _, ok := worlds[2].overrides[param]; !ok {
			t.Errorf("world %q does not override %s", worlds[2].name, param)
		}
		if other, dup := seen[params[param]]; dup {
			t.Errorf("%s and %s both %q in world %q", env, other, params[param], worlds[2].name)
		}
		seen[params[param]] = env
	}
}

func TestSecretAndLogs(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		s, err := d.tmpl.GetSecretsManagerSecretWithName("KeysSecret")
		if err != nil {
			t.Fatal(err)
		}
		if s.SecretString != nil {
			t.Error("KeysSecret has a literal SecretString: keys must be generated, never written down")
		}
		g := s.GenerateSecretString
		if g == nil {
			t.Fatal("KeysSecret has no GenerateSecretString")
		}
		if deref(g.SecretStringTemplate) != "{}" || deref(g.GenerateStringKey) != "master" {
			t.Errorf("secret JSON = template %q key %q, want {} and master", deref(g.SecretStringTemplate), deref(g.GenerateStringKey))
		}
		if deref(g.PasswordLength) < 64 || !deref(g.ExcludePunctuation) {
			t.Errorf("PasswordLength %d ExcludePunctuation %v, want >= 64 and true", deref(g.PasswordLength), deref(g.ExcludePunctuation))
		}
		lg, err := d.tmpl.GetLogsLogGroupWithName("VerificationLogGroup")
		if err != nil {
			t.Fatal(err)
		}
		if got := strconv.Itoa(deref(lg.RetentionInDays)); got != d.params["LogRetentionDays"] {
			t.Errorf("RetentionInDays = %s, want the LogRetentionDays parameter (%s)", got, d.params["LogRetentionDays"])
		}
	})
}

func TestOutputs(t *testing.T) {
	forEachWorld(t, func(t *testing.T, d *deployment) {
		base := "https://" + refPlaceholder("VerificationApi") + ".execute-api." + region + ".amazonaws.com/" + d.params["StageName"] + "/"
		users := d.params["UsersTableName"]
		if users == "" {
			users = refPlaceholder("UsersTable")
		}
		want := map[string]string{
			"ApiUrl":                base,
			"JwksUrl":               base + "auth/v1/.well-known/jwks.json",
			"VerificationTableName": refPlaceholder("VerificationTable"),
			"ActiveUsersTableName":  users,
			"FunctionName":          refPlaceholder("VerificationFunction"),
			"KeysSecretArn":         refPlaceholder("KeysSecret"),
		}
		for name, w := range want {
			o, ok := d.tmpl.Outputs[name]
			if !ok {
				t.Errorf("output %s missing", name)
				continue
			}
			if got := scalar(o.Value); got != w {
				t.Errorf("output %s = %q, want %q", name, got, w)
			}
		}
	})
}
