#!/usr/bin/env bash
# Runs a real `eddy serve` on the embedded broker and talks to it with
# outside clients only: kcat produces events, curl scrapes /metrics, grpcurl
# calls Predict through server reflection. Then SIGTERM must stop it cleanly.
# A second run does it over SASL_SSL: `eddy broker` secured with a SCRAM user
# and generated certificates, eddy serve and kcat authenticating to it.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
KAFKA=127.0.0.1:19092 GRPC=127.0.0.1:15051 METRICS=127.0.0.1:19100

go build -o "$work/eddy" ./cmd/eddy
"$work/eddy" serve --data-dir "$work/data" --embedded-addr $KAFKA --grpc-addr $GRPC \
  --metrics-addr $METRICS --model-name outside --promote-interval 200ms >"$work/serve.log" 2>&1 &
pid=$!

log="$work/serve.log" # what wait_for shows when it times out
metric() { curl -sf "http://$METRICS/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
wait_for() { # description, command
  for _ in $(seq 1 300); do if eval "$2" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done
  echo "timed out waiting for $1"; cat "$log"; exit 1
}
# stop_eddy PID NAME LOG: SIGTERM, exit 0 within 10 s, "eddy stopped cleanly" logged.
stop_eddy() {
  kill -TERM "$1"
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then echo "$2 did not stop within 10s of SIGTERM"; exit 1; fi
  wait "$1" && echo "SIGTERM: $2 stopped cleanly (exit 0)"
  grep -q "eddy stopped cleanly" "$3"
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

stop_eddy $pid eddy "$work/serve.log"

# The same over SASL_SSL, with its own broker, data directory and ports.
KAFKA=127.0.0.1:19093 GRPC=127.0.0.1:15052 METRICS=127.0.0.1:19101
password="dev-$RANDOM-$RANDOM"
printf '%s\n' "$password" >"$work/pw"
log="$work/broker-sasl.log"
"$work/eddy" broker --addr $KAFKA --sasl-user "SCRAM-SHA-256:eddy:$password" --tls-dir "$work/tls" >"$log" 2>&1 &
broker=$!
wait_for "the SASL_SSL broker" "grep -q 'broker listening on $KAFKA (SASL_SSL: SCRAM-SHA-256 user eddy; CA $work/tls/ca.pem)' '$log'"
echo "eddy broker: $(grep 'broker listening' "$log")"

log="$work/serve-sasl.log"
"$work/eddy" serve --data-dir "$work/data-sasl" --brokers $KAFKA --grpc-addr $GRPC --metrics-addr $METRICS \
  --kafka-security-protocol sasl_ssl --kafka-sasl-mechanism SCRAM-SHA-256 --kafka-sasl-username eddy \
  --kafka-sasl-password-file "$work/pw" --kafka-tls-ca "$work/tls/ca.pem" \
  --create-topics true --model-name secured --promote-interval 200ms >"$log" 2>&1 &
pid=$!
wait_for "metrics endpoint" "curl -sf http://$METRICS/metrics"
wait_for "partition assignment over SASL_SSL" "[ \"\$(metric eddy_consumer_partitions_assigned)\" = 1 ]"

kcat_sasl=(-b $KAFKA -X security.protocol=SASL_SSL -X sasl.mechanisms=SCRAM-SHA-256 -X sasl.username=eddy
  -X "sasl.password=$password" -X "ssl.ca.location=$work/tls/ca.pem")
for i in $(seq 1 200); do
  printf '{"id":"sasl-%d","features":{"x":%d,"colour":"c%d"},"label":%d}\n' "$i" "$((i % 17))" "$((i % 3))" "$((i % 2))"
done >"$work/sasl-events.jsonl"
timeout 20 kcat "${kcat_sasl[@]}" -L >"$work/kcat-metadata" 2>&1 || { echo "kcat cannot reach the SASL_SSL broker:"; cat "$work/kcat-metadata"; exit 1; }
kcat "${kcat_sasl[@]}" -t events -P <"$work/sasl-events.jsonl"
wait_for "200 examples learned over SASL_SSL" "[ \"\$(metric 'eddy_examples_learned_total{model=\"secured\"}')\" = 200 ]"
echo "kcat over SASL_SSL (SCRAM-SHA-256): eddy_examples_learned_total{model=\"secured\"} reached $(metric 'eddy_examples_learned_total{model="secured"}')"
timeout 20 kcat "${kcat_sasl[@]}" -t events -C -o beginning -c 1 -f '%s\n' | tee "$work/sasl-read"
grep -q '"id":"sasl-1"' "$work/sasl-read"
echo "kcat: read the first event back over SASL_SSL"
if timeout 20 kcat "${kcat_sasl[@]}" -X sasl.password=wrong -L >"$work/kcat-wrong" 2>&1; then
  echo "kcat: a wrong password was accepted"; exit 1
fi
echo "kcat: a wrong password is refused"

stop_eddy $pid "eddy (SASL_SSL)" "$log"
kill -TERM $broker
wait $broker && echo "SIGTERM: eddy broker (SASL_SSL) stopped cleanly (exit 0)"

# kcat over mutual TLS (which librdkafka 2.0 speaks to the development
# broker, unlike its SASL): an outside client encrypting and authenticating
# with a client certificate, eddy learning what it sends.
KAFKA=127.0.0.1:19094 GRPC=127.0.0.1:15053 METRICS=127.0.0.1:19102
log="$work/broker-mtls.log"
"$work/eddy" broker --addr $KAFKA --tls-dir "$work/mtls" --tls-client-auth >"$log" 2>&1 &
broker=$!
wait_for "the mutual-TLS broker" "grep -q 'broker listening on $KAFKA' '$log'"
echo "eddy broker: $(grep 'broker listening' "$log")"
log="$work/serve-mtls.log"
"$work/eddy" serve --data-dir "$work/data-mtls" --brokers $KAFKA --grpc-addr $GRPC --metrics-addr $METRICS \
  --kafka-tls-ca "$work/mtls/ca.pem" --kafka-tls-cert "$work/mtls/client.pem" --kafka-tls-key "$work/mtls/client-key.pem" \
  --create-topics true --model-name mtls --promote-interval 200ms >"$log" 2>&1 &
pid=$!
wait_for "metrics endpoint" "curl -sf http://$METRICS/metrics"
wait_for "partition assignment over mutual TLS" "[ \"\$(metric eddy_consumer_partitions_assigned)\" = 1 ]"
kcat_tls=(-b $KAFKA -X security.protocol=SSL -X "ssl.ca.location=$work/mtls/ca.pem"
  -X "ssl.certificate.location=$work/mtls/client.pem" -X "ssl.key.location=$work/mtls/client-key.pem")
for i in $(seq 1 200); do
  printf '{"id":"tls-%d","features":{"x":%d},"label":%d}\n' "$i" "$((i % 17))" "$((i % 2))"
done | kcat "${kcat_tls[@]}" -t events -P
wait_for "200 examples learned over mutual TLS" "[ \"\$(metric 'eddy_examples_learned_total{model=\"mtls\"}')\" = 200 ]"
echo "kcat over mutual TLS: eddy_examples_learned_total{model=\"mtls\"} reached $(metric 'eddy_examples_learned_total{model="mtls"}')"
if timeout 20 kcat -b $KAFKA -X security.protocol=SSL -X "ssl.ca.location=$work/mtls/ca.pem" -L >"$work/kcat-nocert" 2>&1; then
  echo "kcat without a client certificate was accepted"; exit 1
fi
echo "kcat: a client without a certificate is refused"
stop_eddy $pid "eddy (mutual TLS)" "$log"
kill -TERM $broker
wait $broker && echo "SIGTERM: eddy broker (mutual TLS) stopped cleanly (exit 0)"
