#!/usr/bin/env bash
# Writes the development secrets of docker-compose.yml's SASL_SSL variant
# into this directory: a CA (ca.pem, what clients trust), the broker's
# certificate for kafka, localhost and 127.0.0.1 in a PKCS12 keystore
# (kafka.keystore.p12, its password in keystore-password) and eddy's SCRAM
# password (eddy-password), and compose.yml, the override that
# docker-compose.yml holds as a comment. The secrets are readable by every
# user, since the containers run as other users than yours: for development
# only. Run it again to replace them all (the CA's key is not kept).
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=eddy compose development CA" -keyout "$tmp/ca-key.pem" -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=kafka" -keyout "$tmp/server-key.pem" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:kafka,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey "$tmp/ca-key.pem" -CAserial "$tmp/ca.srl" -CAcreateserial \
  -days 365 -extfile "$tmp/ext" -out "$tmp/server.pem" 2>/dev/null

openssl rand -hex 16 >keystore-password
openssl pkcs12 -export -name kafka -in "$tmp/server.pem" -inkey "$tmp/server-key.pem" -certfile ca.pem \
  -passout "file:keystore-password" -out kafka.keystore.p12
# Hex, so that it needs no quoting in kafka-configs.sh's SCRAM-SHA-256=[...].
openssl rand -hex 16 >eddy-password
chmod 644 ca.pem kafka.keystore.p12 keystore-password eddy-password
sed -n 's/^#| \{0,1\}//p' ../../docker-compose.yml >compose.yml
echo "wrote $(pwd)/{ca.pem,kafka.keystore.p12,keystore-password,eddy-password,compose.yml}"
