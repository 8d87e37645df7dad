#!/usr/bin/env bash
# Fuzzes the live debug binary against its own GET /openapi.json with schemathesis:
# no 5xx, and every status, content type, header and body as the document says.
#
# The virtualenv is created on first use under target/ (cargo clean removes it); set
# SCHEMATHESIS_VENV to keep it elsewhere. SCHEMATHESIS_MAX_EXAMPLES bounds the run
# (default 100 per operation and phase: about two minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SCHEMATHESIS_VENV:-$PWD/target/schemathesis-venv}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
CHECKS=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance}

if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV" || {
        echo "cannot create a virtualenv: install python3-venv (apt-get install -y python3-venv)" >&2
        exit 1
    }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
fi

cargo build --locked --quiet
BIN=target/debug/appliance
WORK=$(mktemp -d)
DB="$WORK/appliance.db"
PASSWORD=fuzz-password-123
SERVER_PID=
cleanup() {
    if [ "${status:-1}" != 0 ] && [ -f "$WORK/stderr" ]; then
        echo "== last lines the server logged" >&2
        tail -n 40 "$WORK/stderr" >&2
        kill -0 "$SERVER_PID" 2>/dev/null || echo "(the server is no longer running)" >&2
    fi
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

printf '%s\n' "$PASSWORD" | "$BIN" admin user add fuzz --password-stdin --db "$DB" >/dev/null
PAT=$("$BIN" admin token create --user fuzz --name schemathesis --db "$DB")

"$BIN" serve --listen 127.0.0.1:0 --db "$DB" --insecure-cookies >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$WORK/stdout" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/stderr"; exit 1; }
    sleep 0.1
done
BASE=$(sed -n 's/^listening on //p' "$WORK/stdout" | head -n1)
[ -n "$BASE" ] || { echo "serve did not start" >&2; cat "$WORK/stderr" >&2; exit 1; }

# A fresh session token from the API (tokens never reach the command line of a
# long-lived process other than schemathesis itself, which needs the header).
session() {
    python3 - "$BASE" "$PASSWORD" <<'PY'
import json, sys, urllib.request
base, password = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/api/login", method="POST",
    data=json.dumps({"username": "fuzz", "password": password}).encode(),
    headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
}

run() {
    local token=$1; shift
    # From the temp dir: schemathesis keeps a cache in ./.schemathesis.
    (cd "$WORK" && "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 2 \
        --seed 7 \
        --generation-database none \
        --no-color \
        --max-redirects 0 \
        --suppress-health-check all \
        -H "Authorization: Bearer $token" \
        "$@")
}

# Both sessions are made before any fuzzing: fuzzed logins from this address soon put
# it over the failed-login limit, and a login then would get 429 (and must stop here).
FIRST_SESSION=$(session)
LAST_SESSION=$(session)

status=0
echo "== with a session token, everything but the calls that end it"
run "$FIRST_SESSION" --exclude-operation-id logout --exclude-operation-id revoke_all || status=1
echo "== with a PAT"
run "$PAT" --include-tag tokens --include-operation-id introspect || status=1
echo "== the calls that end the presented token"
run "$LAST_SESSION" --include-operation-id logout --include-operation-id revoke_all || status=1

if grep -q 'ERROR' "$WORK/stderr"; then
    echo "the server logged errors:" >&2
    grep 'ERROR' "$WORK/stderr" >&2
    status=1
fi
exit $status
