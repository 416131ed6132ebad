#!/usr/bin/env bash
# Runs a real `eddy serve` on the embedded broker and talks to it with
# outside clients only: kcat produces events, curl scrapes /metrics, grpcurl
# calls Predict through server reflection. Then SIGTERM must stop it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
KAFKA=127.0.0.1:19092 GRPC=127.0.0.1:15051 METRICS=127.0.0.1:19100

go build -o "$work/eddy" ./cmd/eddy
"$work/eddy" serve --data-dir "$work/data" --embedded-addr $KAFKA --grpc-addr $GRPC \
  --metrics-addr $METRICS --model-name outside --promote-interval 200ms >"$work/serve.log" 2>&1 &
pid=$!

metric() { curl -sf "http://$METRICS/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
wait_for() { # description, command
  for _ in $(seq 1 300); do if eval "$2" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done
  echo "timed out waiting for $1"; cat "$work/serve.log"; exit 1
}
wait_for "metrics endpoint" "curl -sf http://$METRICS/metrics"
wait_for "partition assignment" "[ \"\$(metric eddy_consumer_partitions_assigned)\" = 1 ]"

before=$(metric 'eddy_examples_learned_total{model="outside"}')
for i in $(seq 1 200); do
  printf '{"id":"kcat-%d","features":{"x":%d,"colour":"c%d","flag":true},"label":%d}\n' "$i" "$((i % 17))" "$((i % 3))" "$((i % 2))"
done | kcat -b $KAFKA -t events -P
echo 'this is not json' | kcat -b $KAFKA -t events -P
wait_for "200 examples learned" "[ \"\$(metric 'eddy_examples_learned_total{model=\"outside\"}')\" = 200 ]"
echo "kcat: eddy_examples_learned_total went from ${before:-0} to $(metric 'eddy_examples_learned_total{model="outside"}')"
wait_for "dead letter counted" "[ \"\$(metric 'eddy_events_dead_lettered_total{reason=\"invalid_json\",topic=\"events\"}')\" = 1 ]"
timeout 20 kcat -b $KAFKA -t events.dlq -C -o beginning -c 1 -f 'dead letter: %s headers: %h\n' | tee "$work/dlq"
grep -q 'eddy-reason=invalid_json' "$work/dlq"
echo "kcat: the bad event is on events.dlq with reason invalid_json"

grpcurl -plaintext $GRPC list | tee "$work/services"
grep -q eddy.v1.Inference "$work/services"
wait_for "a promoted snapshot" "grpcurl -plaintext -d '{\"model\":\"outside\",\"features\":{\"x\":3}}' $GRPC eddy.v1.Inference/Predict"
grpcurl -plaintext -d '{"model":"outside","features":{"x":3,"colour":"c1","flag":true}}' $GRPC eddy.v1.Inference/Predict | tee "$work/predict.json"
grep -q '"modelVersion"' "$work/predict.json"
grep -q '"probability"' "$work/predict.json"
if grpcurl -plaintext -d '{"model":"outside","features":{"x":[1]}}' $GRPC eddy.v1.Inference/Predict 2>"$work/err"; then
  echo "a list feature was accepted"; exit 1
fi
grep -q InvalidArgument "$work/err"
echo "grpcurl: bad request refused: $(tr '\n' ' ' <"$work/err")"
grpcurl -plaintext $GRPC grpc.health.v1.Health/Check | grep -q SERVING

kill -TERM $pid
for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then echo "eddy did not stop within 10s of SIGTERM"; exit 1; fi
wait $pid && echo "SIGTERM: eddy stopped cleanly (exit 0)"
grep -q "eddy stopped cleanly" "$work/serve.log"
