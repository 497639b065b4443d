#!/usr/bin/env bash
# The benchmark run of `make bench` (inside scripts/with-standins.sh, which
# starts DynamoDB Local and sets TEST_*): what a send and a verify cost in
# process, how many DynamoDB round trips each makes, how far they are from a
# bare DynamoDB call, what the local server sustains under load and how much
# memory it takes, the Lambda bootstrap's cold start and size, and (with
# tesseract installed) how well OCR reads the captchas.
#
# Raw outputs go to build/bench/ (BENCH_OUT to change); a summary is printed
# at the end and written to build/bench/summary.txt. BENCHMARKS.md records
# the figures. Knobs: BENCH_COUNT (runs of each Go benchmark, default 5),
# BENCH_LOAD_DURATION (default 10s), BENCH_LOAD_CONNS (default 8),
# BENCH_FLOOR_SAMPLES (default 300), BENCH_COLDSTART_RUNS (default 7),
# BENCH_BEFORE (the git ref of the "before" binary of the whole-process
# comparison, default e6d0f3d, the code before the SDK client cuts),
# BENCH_WIRE_ROUNDS (interleaved before/after rounds, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TEST_DYNAMODB_ENDPOINT:?run me through scripts/with-standins.sh (make bench)}"
OUT=${BENCH_OUT:-build/bench}
COUNT=${BENCH_COUNT:-5}
LOAD_DURATION=${BENCH_LOAD_DURATION:-10s}
LOAD_CONNS=${BENCH_LOAD_CONNS:-8}
export BENCH_FLOOR_SAMPLES=${BENCH_FLOOR_SAMPLES:-300}
export BENCH_COLDSTART_RUNS=${BENCH_COLDSTART_RUNS:-7}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
started=$(date +%s)
step() { echo; echo "== $* ($(($(date +%s) - started)) s)"; }

step "machine"
{
  echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu:    $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "go:     $(go version | cut -d' ' -f3-)"
  echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
} | tee "$OUT/machine.txt"

step "build"
go build -o "$OUT/server" ./functions/verification
go build -o "$OUT/loadgen" ./tools/loadgen
# Both through the Makefile's one bootstrap recipe: arm64 as deployed, and
# amd64 for the cold start under the emulator on this machine.
make --no-print-directory build >/dev/null # build/bootstrap
make --no-print-directory build-VerificationFunction ARTIFACTS_DIR="$OUT/amd64" LAMBDA_ARCH=amd64 >/dev/null
# The "before" binary of the whole-process comparison, from its git ref
# (exported with git archive: no second worktree, nothing checked out).
BEFORE=${BENCH_BEFORE:-e6d0f3d}
rm -rf "$OUT/before-src" && mkdir -p "$OUT/before-src"
git archive "$BEFORE" | tar -x -C "$OUT/before-src"
(cd "$OUT/before-src" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -tags lambda.norpc -trimpath -ldflags='-s -w -buildid=' \
  -o "$OUT/bootstrap-amd64-before" ./functions/verification)
echo "before: $(git rev-parse --short "$BEFORE") -> $OUT/bootstrap-amd64-before"
size_arm64=$(stat -c %s build/bootstrap)
size_amd64=$(stat -c %s "$OUT/amd64/bootstrap")
awk -v a="$size_arm64" -v b="$size_amd64" 'BEGIN {
  printf "bootstrap linux/arm64 (make build): %d bytes (%.1f MB)\nbootstrap linux/amd64 (same flags):  %d bytes (%.1f MB)\n", a, a / 1e6, b, b / 1e6
}' | tee "$OUT/size.txt"

step "1. in-process cost: go test -bench (count $COUNT)"
go test -run '^$' -bench '^Benchmark(Send|Verify|Outbox|Dynamo|Lambda)' -benchmem -count "$COUNT" ./internal/app | tee "$OUT/inprocess.txt"
# Median of the runs of each benchmark.
awk '/^Benchmark/ {
    name=$1; sub(/-[0-9]+$/, "", name)
    for (i = 3; i < NF; i++) { if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i; if ($(i+1) == "B/op") by[name] = $i; if ($(i+1) == "allocs/op") al[name] = $i }
    if (!(name in seen)) { seen[name] = 1; order[++n] = name }
  }
  END {
    for (k = 1; k <= n; k++) {
      name = order[k]; m = split(substr(ns[name], 2), v, " ")
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
      printf "  %-24s %9.1f µs/op (median of %d; min %.1f, max %.1f) %7d B/op %5d allocs/op\n", name, v[int((m + 1) / 2)] / 1000, m, v[1] / 1000, v[m] / 1000, by[name], al[name]
    }
  }' "$OUT/inprocess.txt" | tee "$OUT/inprocess-median.txt"

step "where a send's time goes: CPU profile of BenchmarkSendEmail"
go test -run '^$' -bench '^BenchmarkSendEmail$' -benchtime 100000x -count 1 \
  -cpuprofile "$OUT/send-cpu.pprof" -o "$OUT/app.test" ./internal/app >/dev/null
go tool pprof -top -nodecount 30 "$OUT/app.test" "$OUT/send-cpu.pprof" >"$OUT/send-profile-flat.txt" 2>/dev/null
go tool pprof -top -cum -nodecount 60 "$OUT/app.test" "$OUT/send-cpu.pprof" >"$OUT/send-profile-cum.txt" 2>/dev/null
grep -E 'Duration|verifykit|notify|slog\.\(\*Logger\)|go-json-experiment/json\.Unmarshal$|gcBgMarkWorker$|mallocgc$' \
  "$OUT/send-profile-cum.txt" | head -25

step "6. whole-process CPU per request on the wire path: in process (getrusage) and profiles"
# In process: the handler on DynamoDB Local with the SES stand-in and an
# SNS fake, and against instant in-process AWS fakes (the SDK's own cost).
go test -run '^$' -bench '^Benchmark(Wire|Instant)' -benchtime 200x -count 3 ./internal/app 2>&1 | tee "$OUT/wire-inprocess.txt" | grep -E '^Benchmark'
go test -run '^$' -bench '^BenchmarkInstantSendEmail$' -benchtime 3000x -count 1 \
  -cpuprofile "$OUT/instant-send-cpu.pprof" -o "$OUT/app.test" ./internal/app >/dev/null
go tool pprof -top -cum -nodecount 70 "$OUT/app.test" "$OUT/instant-send-cpu.pprof" >"$OUT/instant-send-profile-cum.txt" 2>/dev/null
go tool pprof -top -nodecount 40 "$OUT/app.test" "$OUT/instant-send-cpu.pprof" >"$OUT/instant-send-profile-flat.txt" 2>/dev/null
go test -run '^$' -bench '^BenchmarkWireSendEmail$' -benchtime 400x -count 1 \
  -cpuprofile "$OUT/wire-send-cpu.pprof" -o "$OUT/app.test" ./internal/app >/dev/null
go tool pprof -top -cum -nodecount 70 "$OUT/app.test" "$OUT/wire-send-cpu.pprof" >"$OUT/wire-send-profile-cum.txt" 2>/dev/null

step "6. whole-process CPU per request on the wire path: the binaries under load, before ($BEFORE) and after, interleaved"
BENCH_WIRE=1 BENCH_LOADGEN="$OUT/loadgen" \
  BENCH_BINARIES="before=$OUT/bootstrap-amd64-before,after=$OUT/amd64/bootstrap" \
  go test -count=1 -run '^TestWireCost$' -v -timeout 20m ./functions/verification 2>&1 | tee "$OUT/wire.txt" |
  grep -E 'loadgen|FAIL|Error' | cut -c1-200

step "4. throughput and memory: local server under load ($LOAD_CONNS connections, $LOAD_DURATION)"
load_run() { # label, server cpu list ("" = any), load generator cpu list
  local label=$1 scpu=$2 lcpu=$3 port=$4 pin_s="" pin_l=""
  if [ -n "$scpu" ] && command -v taskset >/dev/null; then pin_s="taskset -c $scpu"; pin_l="taskset -c $lcpu"; fi
  $pin_s env \
    ADDR="127.0.0.1:$port" IP_HOURLY_LIMIT=100 CAPTCHA_IP_THRESHOLD=0 CAPTCHA_TARGET_THRESHOLD=0 \
    HMAC_KEY=YmVuY2gtaG1hYy1rZXktYmVuY2gtaG1hYy1rZXktYmVuY2g= \
    "$OUT/server" >/dev/null 2>"$OUT/server-$label.err" &
  # taskset and env exec: $! is the server itself, what is read and stopped
  # below. The trap is set before the wait, so a server that is slow to
  # start is stopped too.
  local pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT # stopped even if the load generator fails
  local waited=0
  until (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    sleep 0.05; waited=$((waited + 1))
    [ $waited -lt 200 ] || { echo "server did not start:"; cat "$OUT/server-$label.err"; exit 1; }
  done
  local idle; idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "[$label] server pid $pid ${pin_s:-unpinned}, load generator ${pin_l:-unpinned}; server RSS at start ${idle} kB"
  $pin_l "$OUT/loadgen" -url "http://127.0.0.1:$port/auth/v1/verification" -c "$LOAD_CONNS" -d "$LOAD_DURATION"
  echo "[$label] server peak RSS (VmHWM): $(awk '/VmHWM/ {print $2, $3}' "/proc/$pid/status")"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  trap - EXIT
}
# One core each, both ways round (on a shared VM the two vCPUs are not
# equally fast at any one time, and which one is faster changes), then
# unpinned. Pinned, the Go runtime sees one CPU (GOMAXPROCS=1).
{
  load_run server-on-cpu1 1 0 3900
  load_run server-on-cpu0 0 1 3901
  load_run unpinned "" "" 3902
} 2>&1 | tee "$OUT/load.txt"

step "2. DynamoDB round trips per request (DynamoDB Local)"
go test -count=1 -run '^TestRoundTrips$' -v ./internal/app 2>&1 | tee "$OUT/roundtrips.txt"

step "3. distance from the floor (DynamoDB Local, $BENCH_FLOOR_SAMPLES samples each)"
go test -tags bench -count=1 -run '^TestFloor$' -v -timeout 10m ./internal/app 2>&1 | tee "$OUT/floor.txt"

step "5. cold start under the runtime emulator and bootstrap size"
BENCH_BOOTSTRAP="$OUT/amd64/bootstrap" go test -tags bench -count=1 -run '^TestColdStart$' -v ./functions/verification 2>&1 |
  tee "$OUT/coldstart.txt"
echo "-- the same for the before binary ($BEFORE):"
BENCH_BOOTSTRAP="$OUT/bootstrap-amd64-before" go test -tags bench -count=1 -run '^TestColdStart$' -v ./functions/verification 2>&1 |
  tee "$OUT/coldstart-before.txt" | grep -E 'INIT phase|Init Duration'
echo "-- and the after binary once more, so the two alternate:"
BENCH_BOOTSTRAP="$OUT/amd64/bootstrap" go test -tags bench -count=1 -run '^TestColdStart$' -v ./functions/verification 2>&1 |
  tee "$OUT/coldstart-after2.txt" | grep -E 'INIT phase|Init Duration'

step "6. captcha OCR resistance (tesseract, 50 images)"
if command -v tesseract >/dev/null; then
  go test -tags bench -count=1 -run '^TestOCR$' -v ./internal/captcha 2>&1 | tee "$OUT/ocr.txt"
else
  echo "tesseract not installed (apt-get install -y tesseract-ocr): not measured" | tee "$OUT/ocr.txt"
fi

step "summary"
{
  cat "$OUT/machine.txt"
  echo
  echo "1. in-process (go test -bench -benchmem, local mode: memory store, outbox sender to io.Discard):"
  cat "$OUT/inprocess-median.txt"
  echo
  echo "2. $(grep -A12 'DynamoDB calls per request' "$OUT/roundtrips.txt" | sed -n '1p' | sed 's/^ *//')"
  grep -A12 'DynamoDB calls per request' "$OUT/roundtrips.txt" | sed -n '2,9p'
  echo
  echo "3. $(grep -A5 'Distance from the floor' "$OUT/floor.txt" | sed -n '1p' | sed 's/^ *//')"
  grep -A5 'Distance from the floor' "$OUT/floor.txt" | sed -n '2,5p'
  echo
  echo "4. local server under load ($LOAD_CONNS connections, $LOAD_DURATION, distinct addresses):"
  grep -E '^\[|requests|latency|status|errors' "$OUT/load.txt" | sed 's/^/  /'
  echo
  echo "6. whole-process CPU on the wire path:"
  grep -E '^Benchmark(Wire|Instant)' "$OUT/wire-inprocess.txt" | sed 's/^/  /'
  sed -n '/Whole-process cost/,/^--- /p' "$OUT/wire.txt" | grep -v '^---' | sed 's/^ *//; s/^/  /'
  echo
  echo "5. cold start and size:"
  grep -E 'INIT phase|Init Duration' "$OUT/coldstart.txt" | head -2 | sed 's/^ */  /'
  echo "  before ($BEFORE): $(grep -E 'INIT phase' "$OUT/coldstart-before.txt" | head -1 | sed 's/^ *//')"
  echo "  after, again:  $(grep -E 'INIT phase' "$OUT/coldstart-after2.txt" | head -1 | sed 's/^ *//')"
  sed 's/^/  /' "$OUT/size.txt"
  echo
  echo "6. captcha OCR resistance:"
  grep -E 'best:|at least one|not measured' "$OUT/ocr.txt" | sed 's/^ */  /'
  echo
  echo "raw outputs: $OUT"
  echo "took $(($(date +%s) - started)) s"
} | tee "$OUT/summary.txt"
