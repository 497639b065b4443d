#!/usr/bin/env bash
# The test run inside scripts/with-standins.sh: every package with the race
# detector, then a short fuzz of each parser (seed corpora run in the first
# pass too).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 15m ./...
go test -run '^$' -fuzz '^FuzzDecodeSend$' -fuzztime 10s ./internal/httpapi
go test -run '^$' -fuzz '^FuzzCheck$' -fuzztime 10s ./internal/captcha
