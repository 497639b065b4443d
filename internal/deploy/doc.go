// Package deploy holds the checks of the deployment artefacts that live at
// the top of the repository: template.yaml (the AWS SAM template),
// samconfig.toml (the `sam deploy` settings) and events/ (the API Gateway
// events that `sam local invoke -e` and the integration tests replay).
//
// No SAM CLI or cfn-lint runs on this project's machines, so the Go tests of
// this package are the template's lint: they parse it with goformation, as
// CloudFormation would see it under several parameter sets, and check the
// tables, the function, the API, the IAM policy, the alarms and the outputs
// against what the README and docs/deploy.md promise. The package has no
// non-test code. template_test.go loads the template under each parameter set
// (a world); template_eval_test.go evaluates its conditions and intrinsics;
// the other template_*_test.go files check one topic each.
package deploy
