# verifykit: the front door. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
ADDR ?= 127.0.0.1:3000
PKG := ./functions/verification
# Lambda build: static, no RPC shim (provided.al2023 speaks the Runtime API),
# reproducible paths.
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags='-s -w -buildid='

.DEFAULT_GOAL := help
.PHONY: help run test unit build build-VerificationFunction lint openapi openapi-lint fuzz bench deploy captcha-sample demo-screenshot standins clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-28s %s\n", $$1, $$2}'

run: ## Serve the API on 127.0.0.1:3000 with the in-memory store; codes are printed and kept at GET /dev/outbox
	ADDR=$(ADDR) $(GO) run $(PKG)

test: standins ## Every test (unit, contract, concurrency, fault, events, runtime emulator) with the local stand-ins started and stopped
	$(GO) mod download
	$(GO) build ./... && $(GO) test -race -count=1 -run '^$$' ./... >/dev/null
	$(MAKE) --no-print-directory lint openapi-lint
	scripts/with-standins.sh scripts/run-tests.sh

unit: ## Unit tests only (no stand-ins; service tests skip)
	$(GO) test -race ./...

standins: ## Install DynamoDB Local, aws-ses-v2-local, the Lambda RIE and Mailpit into the repository
	scripts/standins.sh

# The one recipe that builds the Lambda bootstrap. `sam build` runs it
# (BuildMethod: makefile) with ARTIFACTS_DIR set; `make build` runs it into
# build/; `make bench` runs it with LAMBDA_ARCH=amd64 to time a cold start on
# this machine. So nothing is built two ways, and go build's own cache sees
# every change under internal/.
ARTIFACTS_DIR ?= build
LAMBDA_ARCH ?= arm64

build: build-VerificationFunction ## Build the Lambda bootstrap for linux/arm64 into build/

build-VerificationFunction:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(LAMBDA_ARCH) $(GO) build $(LAMBDA_FLAGS) -o $(ARTIFACTS_DIR)/bootstrap $(PKG)

lint: ## gofmt, go vet (the bench-tagged tests too, so they keep compiling)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet -tags bench ./... # every file: no file is built only without the tag

# The linter's recommended rules with every warning an error: the contract
# must lint clean.
REDOCLY := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true node tools/redocly/node_modules/@redocly/cli/bin/cli.js

openapi: ## Regenerate api/openapi.json from api/openapi.yaml, then lint it
	$(GO) test ./api -run '^TestJSONIsTheYAML$$' -update
	$(MAKE) --no-print-directory openapi-lint

openapi-lint: ## Lint api/openapi.yaml with @redocly/cli (installed by make standins)
	$(REDOCLY) lint --extends=recommended-strict --format=stylish api/openapi.yaml

demo-screenshot: ## Regenerate docs/demo.png with the demo page's Chromium test
	$(GO) test ./web -run '^TestDemoPageInChromium$$' -count=1 -update

# Fuzz runs are bounded by a count of inputs, not a duration: a
# duration-bounded run can end in a spurious "context deadline exceeded" when a
# worker is slow to stop on a loaded machine. make test runs this short fuzz;
# FUZZ_TIMES=20 fuzzes twenty times as long.
FUZZ_TIMES ?= 1

fuzz: ## Fuzz the request parsers (50,000 and 150,000 inputs; FUZZ_TIMES=n for n times more)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeSend$$' -fuzztime $$((50000 * $(FUZZ_TIMES)))x ./internal/httpapi
	$(GO) test -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $$((150000 * $(FUZZ_TIMES)))x ./internal/captcha

bench: standins ## Benchmarks, round trips, floor ratio, load run, cold start and size (raw outputs in build/bench; figures in BENCHMARKS.md)
	$(GO) mod download
	scripts/with-standins.sh scripts/bench.sh

captcha-sample: ## Regenerate docs/captcha-sample.png
	$(GO) run ./internal/captcha/sampleimg -o docs/captcha-sample.png

deploy: ## sam build && sam deploy (needs the SAM CLI and AWS credentials)
	sam build && sam deploy

clean: ## Remove build outputs
	rm -rf build .aws-sam
