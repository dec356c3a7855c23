#!/usr/bin/env bash
# Issue 15's socket benchmark (docs/BENCHMARKS.md, "Issue 15: sockets"): builds the server and
# bench/wsload, starts the server(s) in production mode on one Postgres database, and runs
#   idle           N (10,000) idle sockets subscribed to sessionEvents on one instance: RSS per socket, CPU at idle
#   logoutall-one  ROUNDS rounds of logoutAll of a user with 100 sockets, one instance (no Redis)
#   logoutall-two  the same with the sockets split over two instances sharing Redis, logoutAll sent to one
#
#   scripts/ws-bench.sh                        # all three
#   N=2000 ROUNDS=5 scripts/ws-bench.sh idle   # a quick look
#
# Loopback only; every wait is bounded. Needs Postgres at 127.0.0.1:5432 (user postgres) and, for
# logoutall-two, Redis at $REDIS. SERVER=path uses a prebuilt server binary instead of ./cmd/server.
# The servers inherit the environment: GOMEMLIMIT=2GiB scripts/ws-bench.sh idle is the raised-limit run.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
ROUNDS=${ROUNDS:-20}
SOURCES=${SOURCES:-4}
RATE=${RATE:-500}
SESSIONS=${SESSIONS:-10}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
REDIS=${REDIS:-redis://127.0.0.1:6379/0}
PHASES=("$@")
[ ${#PHASES[@]} -gt 0 ] || PHASES=(idle logoutall-one logoutall-two)

# Each socket is a file descriptor, in the server as in the tool: the whole hard limit (the tool
# raises its own soft limit with setrlimit as well).
ulimit -n "$(ulimit -Hn)"
echo "ws-bench: open-file limit $(ulimit -n); $(nproc) CPUs; $(go version)" >&2

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

if [ -n "${SERVER:-}" ]; then cp "$SERVER" "$work/server"; else go build -o "$work/server" ./cmd/server; fi
go build -o "$work/wsload" ./bench/wsload
mkdir -p "$work/keys"
JWT_KEYS_DIR="$work/keys" go run ./cmd/authctl keys rotate >/dev/null
db="$PG/ws_bench?sslmode=disable"
totp_key=$(head -c 32 /dev/urandom | base64)
PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS ws_bench" -qc "CREATE DATABASE ws_bench" >/dev/null

# start NAME PORT [REDIS_URL]: production settings except the limits a load from one host with a few
# accounts runs into (rate limits, sessions and sockets per user), and the access log at warn.
start() {
  mkdir -p "$work/$1"
  ADDR=127.0.0.1:$2 DATABASE_URL=$db DATA_DIR="$work/$1" APP_ENV=production SMTP_URL=smtp://127.0.0.1:1025 \
    JWT_KEYS_DIR="$work/keys" TOTP_ENCRYPTION_KEY="$totp_key" REDIS_URL=${3:-} ACCESS_TOKEN_TTL=1h LOG_LEVEL=warn \
    LOGIN_RATE_LIMIT=off LOGIN_IP_RATE_LIMIT=off LOGIN_SUCCESS_RATE_LIMIT=off LOGIN_ACCOUNT_RATE_LIMIT=off \
    REGISTER_RATE_LIMIT=off MAX_SESSIONS_PER_USER=1000 WS_MAX_CONNECTIONS_PER_USER=100000 \
    "$work/server" >"$work/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$2/readyz" -o /dev/null && return; sleep 0.1; done
  echo "ws-bench: $1 did not become ready:" >&2; cat "$work/$1.log" >&2; exit 1
}
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }

status=0
for phase in "${PHASES[@]}"; do
  echo "== $phase" >&2
  case $phase in
  idle)
    start a 18091
    "$work/wsload" -mode idle -url http://127.0.0.1:18091/graphql -pid "$pid_a" -n "$N" -users 5 \
      -rate "$RATE" -sources "$SOURCES" -settle 5s -idle 30s || status=1
    ;;
  logoutall-one)
    start a 18091
    "$work/wsload" -mode logoutall -url http://127.0.0.1:18091/graphql -rounds "$ROUNDS" -sockets 100 -sessions "$SESSIONS" || status=1
    ;;
  logoutall-two)
    start a 18091 "$REDIS"
    start b 18092 "$REDIS"
    "$work/wsload" -mode logoutall -url http://127.0.0.1:18091/graphql,http://127.0.0.1:18092/graphql \
      -rounds "$ROUNDS" -sockets 100 -sessions "$SESSIONS" || status=1
    ;;
  *) echo "ws-bench: unknown phase $phase" >&2; exit 2 ;;
  esac
  stop_all
done
exit $status
