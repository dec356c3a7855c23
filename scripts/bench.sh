#!/usr/bin/env bash
# Side-by-side load benchmark: this server on Postgres and on SQLite, pgbench running the SQL of one
# refresh (bench/refresh.pgbench; its p50 column is pgbench's average latency), and (when they answer)
# the two comparison servers of ../shared/bench/peers (start them as their README says: node-apollo on
# 127.0.0.1:4001, gqlgen-baseline on 127.0.0.1:4002). Servers are measured in turns (A B C D, A B C D,
# …) so that machine noise spreads evenly; each run prints one JSON line (bench/loadgen), appended to
# $OUT. Summarise with: go run ./bench/loadgen -summarize "$OUT".
#
#   scripts/bench.sh                     # all scenarios, c=16, 10 s, 3 rounds
#   ROUNDS=1 DURATION=3s scripts/bench.sh me trivial
#
# Loopback only; every run is bounded by DURATION. Needs Postgres at 127.0.0.1:5432 (user postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
C=${C:-16}
OUT=${OUT:-bench-$(date +%Y%m%d-%H%M%S).jsonl}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(me refresh login register trivial)

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/server" ./cmd/server
go build -o "$work/loadgen" ./bench/loadgen

psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS bench_gqlauth" -qc "CREATE DATABASE bench_gqlauth" >/dev/null

# Our server: production settings except the rate limits (the load reuses a few accounts from one IP),
# and the access log at warn (one line per request otherwise; see docs/BENCHMARKS.md).
start() { # name addr database_url
  mkdir -p "$work/$1"
  ADDR=$2 DATABASE_URL=$3 DATA_DIR="$work/$1" APP_ENV=production SMTP_URL=smtp://127.0.0.1:1025 JWT_KEYS_DIR="$work/$1/keys" \
    LOGIN_RATE_LIMIT=off LOGIN_IP_RATE_LIMIT=off LOGIN_SUCCESS_RATE_LIMIT=off LOGIN_ACCOUNT_RATE_LIMIT=off REGISTER_RATE_LIMIT=off LOG_LEVEL=warn \
    "$work/server" >"$work/$1.log" 2>&1 &
  pids+=($!)
}
mkdir -p "$work/pg/keys" "$work/sqlite/keys"
JWT_KEYS_DIR="$work/pg/keys" go run ./cmd/authctl keys rotate >/dev/null
JWT_KEYS_DIR="$work/sqlite/keys" go run ./cmd/authctl keys rotate >/dev/null
start pg 127.0.0.1:18081 "$PG/bench_gqlauth?sslmode=disable"
start sqlite 127.0.0.1:18082 "$work/sqlite/bench.db"

targets=("gqlauth-postgres http://127.0.0.1:18081/graphql" "gqlauth-sqlite http://127.0.0.1:18082/graphql")
for t in "node-apollo http://127.0.0.1:4001/graphql" "gqlgen-baseline http://127.0.0.1:4002/graphql"; do
  url=${t#* }
  if curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"query":"{ __typename }"}' "$url"; then
    targets+=("$t")
  else
    echo "bench: ${t%% *} not answering at $url; skipped" >&2
  fi
done
for t in "${targets[@]:0:2}"; do
  for _ in $(seq 1 100); do curl -sf "${t#* }" -o /dev/null -H 'Content-Type: application/json' -d '{"query":"{ __typename }"}' && break; sleep 0.1; done
done

for round in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    for t in "${targets[@]}"; do
      name=${t%% *}; url=${t#* }
      if [ "$name" = gqlgen-baseline ] && [ "$s" != trivial ]; then continue; fi
      q='{ __typename }'; [ "$name" = gqlgen-baseline ] && q='{ hello }'
      "$work/loadgen" -url "$url" -scenario "$s" -c "$C" -d "$DURATION" -progress 0 \
        -trivial-query "$q" -label "$name round $round" >>"$OUT"
      tail -n 1 "$OUT" >&2
    done
    if [ "$s" = refresh ] && command -v pgbench >/dev/null; then
      # The ceiling: the same SQL as one refresh, run by pgbench at the same concurrency, in the same turn.
      psql -h 127.0.0.1 -U postgres -d bench_gqlauth -q -f bench/refresh-init.sql >/dev/null
      res=$(pgbench -h 127.0.0.1 -U postgres -n -c "$C" -j 2 -T "${DURATION%s}" -f bench/refresh.pgbench bench_gqlauth 2>/dev/null)
      tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$res" | head -1)
      lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$res" | head -1)
      printf '{"label":"pgbench (same SQL) round %s","scenario":"refresh","concurrency":%s,"ok":0,"errors":{},"rps":%s,"latency_ms":{"p50":%s,"p90":0,"p99":0,"max":0,"mean":%s}}\n' \
        "$round" "$C" "${tps:-0}" "${lat:-0}" "${lat:-0}" >>"$OUT"
      tail -n 1 "$OUT" >&2
    fi
  done
done
echo "bench: results in $OUT" >&2
