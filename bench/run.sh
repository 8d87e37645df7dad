#!/usr/bin/env bash
# Reproducible benchmark of appliance on this machine. Every figure is a ratio of
# scenarios measured side by side in this one run (the box is small and noisy).
#
#   bash bench/run.sh                      # ~10 s per scenario, a few minutes in all
#   BENCH_DURATION=1s bash bench/run.sh    # smoke run
#
# Needs: cargo, wrk and nginx (installed from Debian's packages if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
SEED_LARGE=${BENCH_SEED_LARGE:-1000000}
SEED_SMALL=${BENCH_SEED_SMALL:-10000}
PASSWORD='bench-password-123'

need() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] && return 0
  echo "installing $2 ..." >&2
  if [ "$(id -u)" = 0 ]; then
    (apt-get install -y -qq "$2" || (apt-get update -qq && apt-get install -y -qq "$2")) >/dev/null
  else
    echo "$1 is missing: apt-get install $2" >&2; exit 1
  fi
}
need wrk wrk
need nginx nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building the release binary ..." >&2
cargo build --release --locked -q
BIN=$PWD/target/release/appliance

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- nginx answering `return 200`: the HTTP ceiling of this box --------------------
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { return 200 'ok'; }
  }
}
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx.conf"

# --- databases -----------------------------------------------------------------------
seed() { # db count -> prints "session_token pat"
  local db=$1 count=$2
  echo "$PASSWORD" | "$BIN" admin user add bench --password-stdin --db "$db" >/dev/null
  local session
  session=$("$BIN" admin seed --user bench --count "$count" --print 1 --db "$db")
  local pat
  pat=$("$BIN" admin token create --user bench --name bench --db "$db")
  echo "$session $pat"
}
echo "seeding $SEED_SMALL sessions ..." >&2
read -r SESSION PAT < <(seed "$WORK/small.db" "$SEED_SMALL")
echo "seeding $SEED_LARGE sessions ..." >&2
read -r SESSION_L PAT_L < <(seed "$WORK/large.db" "$SEED_LARGE")

start_serve() { # db -> sets PORT and SERVE_PID
  "$BIN" serve --listen 127.0.0.1:0 --db "$1" >"$WORK/serve.out" 2>/dev/null &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 100); do
    grep -q listening "$WORK/serve.out" 2>/dev/null && break
    sleep 0.1
  done
  PORT=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/serve.out")
}

# --- wrk and its output ----------------------------------------------------------------
to_ms() { # "1.23ms" / "456.00us" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}
RESULTS=()
bench() { # name url [wrk args...] -> appends "name rps p50 p99" and sets RPS P99
  local name=$1 url=$2; shift 2
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  RPS=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  P50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  P99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -n "$non2xx" ] && echo "WARN $name: $non2xx non-2xx answers" >&2
  RESULTS+=("$(printf '%-34s %12s %10s %10s' "$name" "$RPS" "$P50" "$P99")")
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1==m {print $2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }

LOGIN_LUA=$WORK/login.lua
cat > "$LOGIN_LUA" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"bench","password":"$PASSWORD"}'
LUA

# --- scenarios on 10k sessions ---------------------------------------------------------
start_serve "$WORK/small.db"
echo "running scenarios ($DURATION each) ..." >&2
bench "nginx return 200 (ceiling)" "http://127.0.0.1:$NGINX_PORT/"
R_NGINX=$RPS
bench "healthz" "http://127.0.0.1:$PORT/healthz"
R_HEALTH=$RPS
bench "validate PAT (10k sessions)" "http://127.0.0.1:$PORT/api/validate" -H "Authorization: Bearer $PAT"
R_VALIDATE=$RPS; P99_ALONE=$P99
W0=$(metric appliance_session_extensions_written_total); S0=$(metric appliance_session_extensions_skipped_total)
bench "userinfo session (sliding)" "http://127.0.0.1:$PORT/api/userinfo" -H "Authorization: Bearer $SESSION"
R_USERINFO=$RPS
W1=$(metric appliance_session_extensions_written_total); S1=$(metric appliance_session_extensions_skipped_total)
WRITES=$((W1 - W0)); SKIPS=$((S1 - S0))

# Login storm beside validation: logins on their own connections.
wrk -t1 -c16 -d"$DURATION" -s "$LOGIN_LUA" "http://127.0.0.1:$PORT/api/login" >"$WORK/storm.out" 2>&1 &
STORM=$!
sleep 0.5
bench "validate PAT during login storm" "http://127.0.0.1:$PORT/api/validate" -H "Authorization: Bearer $PAT"
P99_STORM=$P99
wait "$STORM" || true
LOGINS=$(awk '/^Requests\/sec/ {print $2}' "$WORK/storm.out")
REJECTED=$(metric appliance_login_pool_rejected_total)
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

# --- 1M sessions ------------------------------------------------------------------------
start_serve "$WORK/large.db"
bench "validate PAT ($SEED_LARGE sessions)" "http://127.0.0.1:$PORT/api/validate" -H "Authorization: Bearer $PAT_L"
R_LARGE=$RPS
bench "userinfo session ($SEED_LARGE)" "http://127.0.0.1:$PORT/api/userinfo" -H "Authorization: Bearer $SESSION_L"
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SERVE_PID/status")
WAL_BYTES=$(stat -c %s "$WORK/large.db-wal" 2>/dev/null || echo 0)
WAL_SMALL=$(stat -c %s "$WORK/small.db-wal" 2>/dev/null || echo 0)
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

# --- report -----------------------------------------------------------------------------
echo
printf '%-34s %12s %10s %10s\n' "scenario ($DURATION, $CONNECTIONS conns)" "req/s" "p50 ms" "p99 ms"
for r in "${RESULTS[@]}"; do echo "$r"; done
echo
echo "login storm: $LOGINS logins/s beside validation, $REJECTED refused by the full hashing queue (429)"
echo "sliding writes during the userinfo run: $WRITES written, $SKIPS skipped (one token)"
echo
printf '%-58s %8s %s\n' "figure" "value" "target"
printf '%-58s %8s %s\n' "validate PAT vs nginx return 200" "$(ratio "$R_VALIDATE" "$R_NGINX")" ">= 0.5"
printf '%-58s %8s %s\n' "validate PAT vs healthz" "$(ratio "$R_VALIDATE" "$R_HEALTH")" ">= 0.85"
printf '%-58s %8s %s\n' "userinfo session (sliding) vs validate" "$(ratio "$R_USERINFO" "$R_VALIDATE")" ">= 0.8"
printf '%-58s %8s %s\n' "session-row writes per token in the sliding run" "$WRITES" "<= 1 per coalescing interval (60 s)"
printf '%-58s %8s %s\n' "validate p99 during login storm vs alone" "$(ratio "$P99_STORM" "$P99_ALONE")" "<= 1.5"
printf '%-58s %8s %s\n' "validate with $SEED_LARGE sessions vs $SEED_SMALL" "$(ratio "$R_LARGE" "$R_VALIDATE")" ">= 0.9"
printf '%-58s %8s %s\n' "-wal after the run, MiB (1M db / 10k db)" "$(awk -v a="$WAL_BYTES" -v b="$WAL_SMALL" 'BEGIN{printf "%.1f/%.1f", a/1048576, b/1048576}')" "< 64"
printf '%-58s %8s %s\n' "RSS of serve with $SEED_LARGE sessions, MiB" "$(awk -v k="$RSS_KB" 'BEGIN{printf "%.1f", k/1024}')" "< 100"
echo
echo "summary: validate $(ratio "$R_VALIDATE" "$R_NGINX")x nginx, $(ratio "$R_VALIDATE" "$R_HEALTH")x healthz; sliding $(ratio "$R_USERINFO" "$R_VALIDATE")x validate with $WRITES writes; storm p99 $(ratio "$P99_STORM" "$P99_ALONE")x; 1M $(ratio "$R_LARGE" "$R_VALIDATE")x; RSS $(awk -v k="$RSS_KB" 'BEGIN{printf "%.0f", k/1024}') MiB"
