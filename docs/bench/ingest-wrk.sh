#!/usr/bin/env bash
# Ingest throughput with wrk as the load generator, in a process of its own:
# `orchestrator serve` (embedded JetStream, file storage) against 300,000
# distinct signed run payloads, next to the raw synchronous JetStream
# publish rate measured on the same machine just before. Needs wrk
# (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/orchestrator" ./cmd/orchestrator
go run docs/bench/wrkbodies.go 300000 "$work/bench.lua"
raw=$(go test ./internal/app -run '^$' -bench RawJetStreamPublish -benchtime 5000x -count 5 |
  awk '/^BenchmarkRaw/{print $3}' | sort -n | sed -n 3p)
echo "raw synchronous publish: median of 5 runs $raw ns/op"
ORCHESTRATOR_WEBHOOK_TOKEN=bench-token "$work/orchestrator" serve --data-dir "$work/data" \
  --http-listen 127.0.0.1:18090 --embedded-nats-listen off --log-level warn &
pid=$!
until curl -sf 127.0.0.1:18090/readyz >/dev/null; do sleep 0.1; done
wrk -t2 -c16 -d8s -s "$work/bench.lua" http://127.0.0.1:18090 | tee "$work/wrk.txt"
curl -s 127.0.0.1:18090/metrics | grep -E '^orchestrator_(webhooks_total|run_events_duplicate_total)'
awk -v raw="$raw" '/^Requests\/sec/{printf "ingest %.0f/s = %.0f%% of the raw rate (%.0f/s)\n", $2, 100*$2*raw/1e9, 1e9/raw}' "$work/wrk.txt"
