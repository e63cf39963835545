#!/usr/bin/env bash
# Ingest throughput with wrk as the load generator, in a process of its own:
# `orchestrator serve` (embedded JetStream, file storage) against 150,000
# distinct signed run payloads. Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/orchestrator" ./cmd/orchestrator
go run docs/bench/wrkbodies.go 150000 "$work/bench.lua"
ORCHESTRATOR_WEBHOOK_TOKEN=bench-token "$work/orchestrator" serve --data-dir "$work/data" \
  --http-listen 127.0.0.1:18090 --embedded-nats-listen off --log-level warn &
pid=$!
until curl -sf 127.0.0.1:18090/readyz >/dev/null; do sleep 0.1; done
wrk -t2 -c16 -d8s -s "$work/bench.lua" http://127.0.0.1:18090
curl -s 127.0.0.1:18090/metrics | grep '^orchestrator_webhooks_total'
