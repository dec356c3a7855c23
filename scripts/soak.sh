#!/usr/bin/env bash
# Soak test: the server (production settings) on Postgres under DURATION of mixed traffic at
# concurrency C: bench/loadgen -scenario mixed, where every virtual user repeats a journey of register
# (1 in 4) or login, 8 × me, 3 × (refreshToken, me) and logout. Every INTERVAL loadgen prints a window
# line (req/s, p50/p99/max, errors by code); right after each one, before the load, right after it and
# 10 s later (idle) the script samples the server: RSS, goroutines, DB pool connections in use / open
# and Postgres backends on the database. The Markdown report (written to $OUT and printed) puts them
# side by side, so that a leak shows as a column that keeps growing or does not come back at idle.
#
#   scripts/soak.sh                                 # 10 minutes at c=64, one window per minute
#   DURATION=1m INTERVAL=15s scripts/soak.sh        # a short smoke run
#   DB_MAX_OPEN_CONNS=40 C=128 scripts/soak.sh      # DB_MAX_OPEN_CONNS is passed on to the server
#   DURATION=60s INTERVAL=5s OUTAGE_AT=20s OUTAGE_FOR=10s scripts/soak.sh
#                                                   # Postgres outage under load: see below
#
# OUTAGE_AT / OUTAGE_FOR (seconds into the measured time; OUTAGE_AT >= INTERVAL): stop the local Postgres cluster with
# pg_ctlcluster (fast shutdown: every connection is terminated) and start it again OUTAGE_FOR later,
# under load. /readyz is polled every 0.25 s meanwhile and the report gets an "Outage" section: when
# /readyz turned 503 and 200 again, and the windows show the SERVICE_UNAVAILABLE answers and the
# recovery. Postgres is started again whatever happens (the exit trap). Needs root and pg_ctlcluster.
#
# Next to $OUT it keeps the raw data: <OUT without .md>.jsonl (loadgen's lines), .samples.tsv, .server.log
# and .loadgen.log; re-render the report with go run ./bench/loadgen -soak-report <jsonl> <samples.tsv>.
# Loopback only (server and Postgres); bounded: setup, 5 s warm-up, DURATION, 10 s idle. Needs Postgres at
# $PG (database soak_gqlauth is dropped and created anew), psql and curl.
set -euo pipefail

DURATION=${DURATION:-10m}
C=${C:-64}
INTERVAL=${INTERVAL:-1m}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
ADDR=${ADDR:-127.0.0.1:18090}
OUT=${OUT:-soak-$(date +%Y%m%d-%H%M%S).md}
DB=soak_gqlauth

case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac # relative to where the script was started
cd "$(dirname "$0")/.."
base=${OUT%.md}
jsonl=$base.jsonl samples=$base.samples.tsv serverlog=$base.server.log loadlog=$base.loadgen.log

loopback() { [[ $1 =~ ^(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?$ ]]; }
loopback "$ADDR" || { echo "soak: ADDR=$ADDR is not a loopback address" >&2; exit 2; }
pghost=${PG#*://}; pghost=${pghost#*@}; pghost=${pghost%%/*}; pghost=${pghost%%\?*}
loopback "$pghost" || { echo "soak: PG=$PG: the host is not a loopback address" >&2; exit 2; }
for tool in psql curl; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is needed" >&2; exit 2; }
done

work=$(mktemp -d)
pid= lg=
OUTAGE_AT=${OUTAGE_AT:-} OUTAGE_FOR=${OUTAGE_FOR:-10s}
go_seconds() { # a Go duration such as 1m, 15s, 1m30s, 500ms -> seconds
  awk -v d="$1" 'BEGIN { s = 0; while (match(d, /^[0-9.]+(ms|h|m|s)/)) { n = substr(d, 1, RLENGTH); u = n; sub(/^[0-9.]+/, "", u); n += 0
    s += (u == "h" ? n * 3600 : u == "m" ? n * 60 : u == "ms" ? n / 1000 : n); d = substr(d, RLENGTH + 1) } print s }'
}
pgctl() { pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main "$1"; }
outage_pid=
cleanup() {
  [ -n "$outage_pid" ] && kill "$outage_pid" 2>/dev/null || true
  if [ -n "$OUTAGE_AT" ] && ! pg_isready -h 127.0.0.1 -q; then pgctl start || true; fi
  [ -n "$lg" ] && kill "$lg" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/server" ./cmd/server
go build -o "$work/loadgen" ./bench/loadgen
mkdir -p "$work/keys" "$work/data"
JWT_KEYS_DIR="$work/keys" go run ./cmd/authctl keys rotate >/dev/null

PGOPTIONS='-c client_min_messages=warning' psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -qc "CREATE DATABASE $DB" >/dev/null

# Production settings except the rate limits (all load comes from one IP and reuses C accounts) and
# the access log at warn (one line per request otherwise). env execs the server: $! is its pid.
server_env=(ADDR="$ADDR" DATABASE_URL="$PG/$DB?sslmode=disable" DATA_DIR="$work/data" APP_ENV=production SMTP_URL=smtp://127.0.0.1:1025
  JWT_KEYS_DIR="$work/keys" LOGIN_RATE_LIMIT=off LOGIN_IP_RATE_LIMIT=off LOGIN_SUCCESS_RATE_LIMIT=off LOGIN_ACCOUNT_RATE_LIMIT=off REGISTER_RATE_LIMIT=off LOG_LEVEL=warn)
[ -n "${DB_MAX_OPEN_CONNS:-}" ] && server_env+=(DB_MAX_OPEN_CONNS="$DB_MAX_OPEN_CONNS")
env "${server_env[@]}" "$work/server" >"$serverlog" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://$ADDR/healthz" -o /dev/null && break; sleep 0.1; done
if ! curl -sf "http://$ADDR/healthz" -o /dev/null; then
  echo "soak: the server did not answer /healthz at $ADDR within 10 s; its log:" >&2
  cat "$serverlog" >&2
  exit 1
fi
if [ "$(readlink -f "/proc/$pid/exe")" != "$(readlink -f "$work/server")" ]; then
  echo "soak: pid $pid is $(readlink -f "/proc/$pid/exe"), not the server binary" >&2
  exit 1
fi

# sample LABEL appends one line to $samples: the time, the server's RSS (MiB), goroutines and DB pool
# connections in use / open (from /metrics), and the Postgres backends connected to $DB (psql's own
# connection is to the database postgres, so it is not counted). A value that cannot be read is empty.
metric() { awk -v m="$1" '$1 == m {print $2; exit}' <<<"$2"; } # NAME, the /metrics text
sample() {
  local now rss metrics gor inuse open backends
  now=$(date +%s.%N)
  rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || true)
  metrics=$(curl -sf --max-time 5 "http://$ADDR/metrics" || true)
  gor=$(metric 'go_goroutines' "$metrics")
  inuse=$(metric 'go_sql_in_use_connections{db_name="gqlauth"}' "$metrics")
  open=$(metric 'go_sql_open_connections{db_name="gqlauth"}' "$metrics")
  backends=$(psql "$PG/postgres" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'" 2>/dev/null || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$now" "$rss" "$gor" "$inuse" "$open" "$backends" >>"$samples"
  printf 'soak: sample %-5s RSS %s MiB, goroutines %s, DB pool %s in use / %s open, PG backends %s\n' \
    "$1" "${rss:-?}" "${gor:-?}" "${inuse:-?}" "${open:-?}" "${backends:-?}" >&2
}
printf 'label\tunix_s\trss_mib\tgoroutines\tpool_in_use\tpool_open\tpg_backends\n' >"$samples"
sample start

echo "soak: mixed load, c=$C for $DURATION (after setup and a 5 s warm-up), a window every $INTERVAL" >&2
"$work/loadgen" -url "http://$ADDR/graphql" -scenario mixed -c "$C" -d "$DURATION" -interval "$INTERVAL" \
  -warmup 5s -progress 0 -label "soak c=$C" >"$jsonl" 2>"$loadlog" &
lg=$!
if [ -n "$OUTAGE_AT" ]; then
  # Timeline: "<unix s> <event>" lines; readyz lines only when the status changes.
  timeline=$base.outage.txt
  : >"$timeline"
  (
    # The first window line comes INTERVAL after the measured time starts (setup and warm-up take a
    # while before that): from there, wait until OUTAGE_AT into the measured time.
    until grep -q '"kind":"window"' "$jsonl" 2>/dev/null; do sleep 0.1; done
    sleep "$(awk -v a="${OUTAGE_AT%s}" -v i="$(go_seconds "$INTERVAL")" 'BEGIN {d = a - i; print (d > 0 ? d : 0)}')"
    echo "$(date +%s.%N) postgres-stop" >>"$timeline"
    pgctl stop >/dev/null
    echo "$(date +%s.%N) postgres-stopped" >>"$timeline"
    sleep "${OUTAGE_FOR%s}"
    echo "$(date +%s.%N) postgres-start" >>"$timeline"
    pgctl start >/dev/null
    echo "$(date +%s.%N) postgres-started" >>"$timeline"
  ) &
  outage_pid=$!
  (
    last=
    while kill -0 "$lg" 2>/dev/null; do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$ADDR/readyz" || true)
      [ "$code" != "$last" ] && echo "$(date +%s.%N) readyz-$code" >>"$timeline" && last=$code
      sleep 0.25
    done
  ) &
fi
# A sample right after each window line, so that both describe the same moment.
seen=0
while kill -0 "$lg" 2>/dev/null; do
  n=$(grep -c '"kind":"window"' "$jsonl" || true)
  if [ "$n" -gt "$seen" ]; then
    seen=$n
    sample "w$n"
    tail -n 1 "$jsonl" >&2
  fi
  sleep 0.2
done
status=0
wait "$lg" || status=$?
lg=
sample end
cat "$loadlog" >&2
if [ "$status" -ne 0 ]; then
  echo "soak: loadgen failed (exit $status); the report shows what there is" >&2
fi
echo "soak: idle for 10 s" >&2
sleep 10
sample idle

commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- 2>/dev/null || commit="$commit (with uncommitted changes)"
"$work/loadgen" -soak-report -commit "$commit" -duration "$DURATION" \
  -note "Server: APP_ENV=production on Postgres ($DB), DB_MAX_OPEN_CONNS=${DB_MAX_OPEN_CONNS:-default}, rate limits off, LOG_LEVEL=warn; load tool on the same host ($(nproc) CPUs); raw data: $(basename "$jsonl"), $(basename "$samples"), $(basename "$serverlog")" \
  "$jsonl" "$samples" >"$OUT"
if [ -s "$serverlog" ]; then
  printf '\n## Server log (warn and above), last 20 lines\n\n```\n%s\n```\n' "$(tail -n 20 "$serverlog")" >>"$OUT"
fi
if [ -n "$OUTAGE_AT" ]; then
  wait "$outage_pid" 2>/dev/null || true
  outage_pid=
  started=$(grep -o '"started_at":"[^"]*"' "$jsonl" | tail -n 1 | cut -d'"' -f4)
  start=$(date -d "$started" +%s.%N)
  {
    printf '\n## Outage (OUTAGE_AT=%s, OUTAGE_FOR=%s)\n\n' "$OUTAGE_AT" "$OUTAGE_FOR"
    printf 'Seconds into the measured time, like the t column of the windows, which show the answers by code meanwhile.\n\n'
    sort -n "$timeline" | awk -v s="$start" '{printf "- %7.2f s  %s\n", $1 - s, $2}'
  } >>"$OUT"
fi
cat "$OUT"
echo "soak: report in $OUT" >&2
