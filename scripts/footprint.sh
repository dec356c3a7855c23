#!/usr/bin/env bash
# Start-up time and memory of the server on SQLite: time until GET /healthz answers 200, RSS when
# idle, and peak RSS (VmHWM) during 64 concurrent logins at the production argon2id cost.
# Loopback only; bounded (one 10 s load run).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/server" ./cmd/server
go build -o "$work/loadgen" ./bench/loadgen
addr=127.0.0.1:18093

start=$(date +%s%N)
ADDR=$addr DATA_DIR="$work" LOG_LEVEL=warn LOGIN_RATE_LIMIT=off LOGIN_IP_RATE_LIMIT=off LOGIN_SUCCESS_RATE_LIMIT=off LOGIN_ACCOUNT_RATE_LIMIT=off "$work/server" &
pid=$!
until curl -sf "http://$addr/healthz" -o /dev/null; do sleep 0.002; done
ready=$(( ($(date +%s%N) - start) / 1000000 ))
echo "ready (first 200 from /healthz) after ${ready} ms, fresh SQLite database and generated key"
sleep 2
echo "idle RSS: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
"$work/loadgen" -url "http://$addr/graphql" -scenario login -c 64 -accounts 64 -d 10s -progress 0 -label "login c=64"
echo "peak RSS (VmHWM) after 64 concurrent logins: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
sleep 3
echo "RSS 3 s later: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
