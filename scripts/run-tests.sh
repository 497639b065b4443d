#!/usr/bin/env bash
# The test run inside scripts/with-standins.sh: every package with the race
# detector, then a short fuzz of each parser (seed corpora run in the first
# pass too). The fuzz runs are bounded by a count of inputs, not a duration:
# a duration-bounded run can end in a spurious "context deadline exceeded"
# when a worker is slow to stop on a loaded machine.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 15m ./...
go test -run '^$' -fuzz '^FuzzDecodeSend$' -fuzztime 50000x ./internal/httpapi
go test -run '^$' -fuzz '^FuzzCheck$' -fuzztime 150000x ./internal/captcha
