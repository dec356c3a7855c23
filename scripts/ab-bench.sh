#!/usr/bin/env bash
# A/B of two server binaries on the same load, measured in turns (A B, A B, …) so that machine noise
# spreads evenly: both in production mode on SQLite with the rate limits off, bench/loadgen at c=16 for
# 10 s per run, ROUNDS rounds of trivial, me and refresh; prints loadgen's summary (medians).
#
#   git worktree add /tmp/before a395639 && (cd /tmp/before && go build -o /tmp/server-before ./cmd/server)
#   go build -o /tmp/server-after ./cmd/server
#   scripts/ab-bench.sh /tmp/server-before /tmp/server-after
#
# Loopback only (ports 18181 and 18182); every run is bounded by -d.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 SERVER_A SERVER_B" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
go build -o "$work/loadgen" ./bench/loadgen
start() { # name port binary
  mkdir -p "$work/$1/keys"
  JWT_KEYS_DIR="$work/$1/keys" go run ./cmd/authctl keys rotate >/dev/null
  ADDR=127.0.0.1:$2 DATABASE_URL="$work/$1/bench.db" DATA_DIR="$work/$1" APP_ENV=production SMTP_URL=smtp://127.0.0.1:1025 \
    JWT_KEYS_DIR="$work/$1/keys" TOTP_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
    LOGIN_RATE_LIMIT=off LOGIN_IP_RATE_LIMIT=off LOGIN_SUCCESS_RATE_LIMIT=off LOGIN_ACCOUNT_RATE_LIMIT=off \
    REGISTER_RATE_LIMIT=off LOG_LEVEL=warn "$3" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$2/readyz" -o /dev/null && return; sleep 0.1; done
  echo "ab-bench: $1 did not become ready:" >&2; cat "$work/$1.log" >&2; exit 1
}
start A 18181 "$1"
start B 18182 "$2"
out="$work/ab.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  for s in trivial me refresh; do
    for t in "A 18181" "B 18182"; do
      "$work/loadgen" -url "http://127.0.0.1:${t#* }/graphql" -scenario "$s" -c 16 -d 10s -progress 0 \
        -label "${t% *} round $round" >>"$out"
    done
  done
done
"$work/loadgen" -summarize "$out"
