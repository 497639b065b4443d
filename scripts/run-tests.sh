#!/usr/bin/env bash
# The test run inside scripts/with-standins.sh: every package with the race
# detector, then `make fuzz`, a short fuzz of each parser bounded by a count
# of inputs (seed corpora run in the first pass too).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -race -count=1 -timeout 15m ./...
make --no-print-directory fuzz
