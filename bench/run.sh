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
STORM_ROUNDS=${BENCH_STORM_ROUNDS:-3}
PASSWORD='bench-password-123'

# Debian/Ubuntu packages, installed when missing (as root, or through sudo).
APT_UPDATED=
need() { # command package
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] && return 0
  echo "installing $2 ..." >&2
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else
      echo "$1 is missing and this is not root: apt-get install $2" >&2; exit 1
    fi
  fi
  if [ -z "$APT_UPDATED" ]; then $sudo apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  # Debian starts the packaged nginx service on install; this script runs its own.
  if [ "$2" = nginx ] && command -v service >/dev/null 2>&1; then $sudo service nginx stop >/dev/null 2>&1 || true; fi
}
need wrk wrk
need nginx nginx
need curl curl
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

free_port() { # a port nothing listens on (python3 if present, else probe with bash)
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    return
  fi
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

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

start_serve() { # db [name] -> sets PORT and SERVE_PID
  local out="$WORK/${2:-serve}.out"
  "$BIN" serve --listen 127.0.0.1:0 --db "$1" >"$out" 2>/dev/null &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 100); do
    grep -q listening "$out" 2>/dev/null && break
    sleep 0.1
  done
  PORT=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$out")
}

# --- wrk and its output ----------------------------------------------------------------
to_ms() { # "1.23ms" / "456.00us" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}
RESULTS=()
bench() { # name url [wrk args...] -> appends "name rps p50 p99 stalls" and sets RPS P99
  local name=$1 url=$2; shift 2
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  # wrk's "timeout" count: requests (or whole connections) with no answer after 2 s.
  local stalls
  stalls=$(awk '/Socket errors/ {for (i=1;i<=NF;i++) if ($i=="timeout") print $(i+1)}' <<<"$out")
  RPS=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  P50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  P99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  local non2xx
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -n "$non2xx" ] && echo "WARN $name: $non2xx non-2xx answers" >&2
  RESULTS+=("$(printf '%-38s %10s %9s %9s %7s' "$name" "$RPS" "$P50" "$P99" "${stalls:-0}")")
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1==m {print $2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a/b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The login storm runs a little longer than the validation it surrounds.
if [[ $DURATION =~ ^([0-9]+)s$ ]]; then STORM_DURATION="$((BASH_REMATCH[1] + 1))s"; else STORM_DURATION=$DURATION; fi

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

# Login storm beside validation (logins on their own connections), alternated with
# validation alone on the same server: p99 at full load is noisy, so each side is
# measured $STORM_ROUNDS times and the medians are compared.
ALONE_P99S=(); STORM_P99S=(); STORM_RPSS=(); LOGINS_L=()
for i in $(seq "$STORM_ROUNDS"); do
  bench "validate PAT alone (pair $i)" "http://127.0.0.1:$PORT/api/validate" -H "Authorization: Bearer $PAT"
  ALONE_P99S+=("$P99")
  wrk -t1 -c16 -d"$STORM_DURATION" -s "$LOGIN_LUA" "http://127.0.0.1:$PORT/api/login" >"$WORK/storm.out" 2>&1 &
  STORM=$!
  sleep 0.5
  bench "validate PAT + login storm (pair $i)" "http://127.0.0.1:$PORT/api/validate" -H "Authorization: Bearer $PAT"
  STORM_P99S+=("$P99"); STORM_RPSS+=("$RPS")
  wait "$STORM" || true
  LOGINS_L+=("$(awk '/^Requests\/sec/ {print $2}' "$WORK/storm.out")")
done
P99_ALONE=$(median "${ALONE_P99S[@]}"); P99_STORM=$(median "${STORM_P99S[@]}")
LOGINS=$(median "${LOGINS_L[@]}")
REJECTED=$(metric appliance_login_pool_rejected_total)
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

# RSS of a fresh server holding 1 000 idle keep-alive connections (each has been
# answered once), against the same server with none.
start_serve "$WORK/small.db"
RSS_IDLE0_KB=$(awk '/VmRSS/ {print $2}' "/proc/$SERVE_PID/status")
RSS_IDLE_KB=$(python3 - "$PORT" "$SERVE_PID" <<'PY'
import socket, sys
port, pid = int(sys.argv[1]), sys.argv[2]
conns = []
for _ in range(1000):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(c)
for c in conns:
    c.settimeout(5)
    data = b""
    while b'{"status":"ok"}' not in data:
        data += c.recv(4096)
status = open(f"/proc/{pid}/status").read()
rss = next(l.split()[1] for l in status.splitlines() if l.startswith("VmRSS"))
m = socket.create_connection(("127.0.0.1", port))
m.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
text = b""
while chunk := m.recv(65536):
    text += chunk
gauge = next(l.split()[1] for l in text.decode().splitlines() if l.startswith("appliance_open_connections "))
print(rss, gauge)
PY
)
read -r RSS_IDLE_KB OPEN_IDLE <<<"$RSS_IDLE_KB"
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

# --- PostgreSQL: one replica, and two behind an nginx upstream ---------------------------
# On the server named by BENCH_PG_URL (default: the local one, if pg_isready), in a
# fresh database dropped afterwards. BENCH_PG_URL=none skips it.
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
R_PG1=; R_PG1_U=; R_PG2=; R_PG2_U=
if [ "$PG_URL" != none ] && command -v psql >/dev/null 2>&1 && psql "$PG_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  PG_DB="appliance_bench_$$"
  psql "$PG_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null
  PG_BENCH_URL="${PG_URL%/*}/$PG_DB"
  drop_pg() { psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; }
  trap 'cleanup; drop_pg' EXIT
  echo "seeding $SEED_SMALL sessions in PostgreSQL ..." >&2
  read -r SESSION_P PAT_P < <(seed "$PG_BENCH_URL" "$SEED_SMALL")
  start_serve "$PG_BENCH_URL" pg1
  PG1_PID=$SERVE_PID; PG1_PORT=$PORT
  bench "validate PAT, PostgreSQL, 1 replica" "http://127.0.0.1:$PG1_PORT/api/validate" -H "Authorization: Bearer $PAT_P"
  R_PG1=$RPS
  bench "userinfo session, PostgreSQL, 1 replica" "http://127.0.0.1:$PG1_PORT/api/userinfo" -H "Authorization: Bearer $SESSION_P"
  R_PG1_U=$RPS
  start_serve "$PG_BENCH_URL" pg2
  PG2_PID=$SERVE_PID; PG2_PORT=$PORT
  UP_PORT=$(free_port)
  cat > "$WORK/upstream.conf" <<CONF
worker_processes auto;
pid $WORK/upstream.pid;
error_log $WORK/nginx/logs/upstream-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream appliance { server 127.0.0.1:$PG1_PORT; server 127.0.0.1:$PG2_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { proxy_pass http://appliance; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  "$NGINX" -p "$WORK/nginx" -c "$WORK/upstream.conf"
  sleep 0.3
  bench "validate PAT, PostgreSQL, 2 replicas + nginx" "http://127.0.0.1:$UP_PORT/api/validate" -H "Authorization: Bearer $PAT_P"
  R_PG2=$RPS
  bench "userinfo session, PostgreSQL, 2 replicas + nginx" "http://127.0.0.1:$UP_PORT/api/userinfo" -H "Authorization: Bearer $SESSION_P"
  R_PG2_U=$RPS
  kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  kill "$PG1_PID" "$PG2_PID"; wait "$PG1_PID" "$PG2_PID" 2>/dev/null || true
  drop_pg
else
  echo "PostgreSQL not reachable at ${PG_URL%%@*}@…: its column is skipped (set BENCH_PG_URL)" >&2
fi

# --- report -----------------------------------------------------------------------------
echo
printf '%-38s %10s %9s %9s %7s\n' "scenario ($DURATION, $CONNECTIONS conns)" "req/s" "p50 ms" "p99 ms" "stalls"
for r in "${RESULTS[@]}"; do echo "$r"; done
echo
echo "login storm: median $LOGINS logins/s beside validation (successful and 429 together), $REJECTED refused in all by the full hashing queue (429)"
echo "validate p99 alone: ${ALONE_P99S[*]} ms; during the storm: ${STORM_P99S[*]} ms (medians $P99_ALONE / $P99_STORM)"
echo "stalls: wrk's count of requests unanswered after 2 s (see bench/README.md)"
echo "sliding writes during the userinfo run: $WRITES written, $SKIPS skipped (one token)"
echo
printf '%-58s %8s %s\n' "figure" "value" "target"
printf '%-58s %8s %s\n' "validate PAT vs nginx return 200" "$(ratio "$R_VALIDATE" "$R_NGINX")" ">= 0.6"
printf '%-58s %8s %s\n' "healthz vs nginx return 200" "$(ratio "$R_HEALTH" "$R_NGINX")" ">= 0.85"
printf '%-58s %8s %s\n' "validate PAT vs healthz" "$(ratio "$R_VALIDATE" "$R_HEALTH")" ">= 0.85"
printf '%-58s %8s %s\n' "userinfo session (sliding) vs validate" "$(ratio "$R_USERINFO" "$R_VALIDATE")" ">= 0.9"
printf '%-58s %8s %s\n' "session-row writes per token in the sliding run" "$WRITES" "<= 1 per coalescing interval (60 s)"
printf '%-58s %8s %s\n' "validate p99 during login storm vs alone (medians of $STORM_ROUNDS)" "$(ratio "$P99_STORM" "$P99_ALONE")" "<= 1.5"
printf '%-58s %8s %s\n' "validate with $SEED_LARGE sessions vs $SEED_SMALL" "$(ratio "$R_LARGE" "$R_VALIDATE")" ">= 0.9"
printf '%-58s %8s %s\n' "-wal after the run, MiB (1M db / 10k db)" "$(awk -v a="$WAL_BYTES" -v b="$WAL_SMALL" 'BEGIN{printf "%.1f/%.1f", a/1048576, b/1048576}')" "< 64"
printf '%-58s %8s %s\n' "RSS with 1000 idle keep-alive connections, MiB (none)" "$(awk -v k="$RSS_IDLE_KB" -v z="$RSS_IDLE0_KB" 'BEGIN{printf "%.1f (%.1f)", k/1024, z/1024}')" "reported; open connections seen: $OPEN_IDLE"
printf '%-58s %8s %s\n' "RSS of serve with $SEED_LARGE sessions, MiB" "$(awk -v k="$RSS_KB" 'BEGIN{printf "%.1f", k/1024}')" "< 100"
if [ -n "$R_PG1" ]; then
  printf '%-58s %8s %s\n' "validate, PostgreSQL 1 replica vs SQLite" "$(ratio "$R_PG1" "$R_VALIDATE")" "(the price of the network)"
  printf '%-58s %8s %s\n' "userinfo (sliding), PostgreSQL 1 replica vs SQLite" "$(ratio "$R_PG1_U" "$R_USERINFO")" ""
  printf '%-58s %8s %s\n' "validate, PostgreSQL 2 replicas + nginx vs SQLite" "$(ratio "$R_PG2" "$R_VALIDATE")" "(same 2 cores: no gain expected here)"
  printf '%-58s %8s %s\n' "userinfo, PostgreSQL 2 replicas + nginx vs SQLite" "$(ratio "$R_PG2_U" "$R_USERINFO")" ""
fi
echo
echo "summary: validate $(ratio "$R_VALIDATE" "$R_NGINX")x nginx, healthz $(ratio "$R_HEALTH" "$R_NGINX")x nginx, validate $(ratio "$R_VALIDATE" "$R_HEALTH")x healthz; sliding $(ratio "$R_USERINFO" "$R_VALIDATE")x validate with $WRITES writes; storm p99 $(ratio "$P99_STORM" "$P99_ALONE")x; 1M $(ratio "$R_LARGE" "$R_VALIDATE")x; RSS $(awk -v k="$RSS_KB" 'BEGIN{printf "%.0f", k/1024}') MiB; 1000 idle connections $(awk -v k="$RSS_IDLE_KB" 'BEGIN{printf "%.0f", k/1024}') MiB"
