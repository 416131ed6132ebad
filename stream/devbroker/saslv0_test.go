package devbroker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestASecuredBrokerAdvertisesSaslHandshakeFromV0 checks what librdkafka
// 2.0 clients (kcat) need to start SASL: SaslHandshake advertised from v0,
// every other key as kfake has it. (.ci/outside-clients.sh runs kcat over
// SASL_SSL against it.)
func TestASecuredBrokerAdvertisesSaslHandshakeFromV0(t *testing.T) {
	keys, err := kfakeAPIKeys()
	if err != nil {
		t.Fatal(err)
	}
	var sasl, produce bool
	for _, k := range keys {
		switch kmsg.Key(k.ApiKey) {
		case kmsg.SASLHandshake:
			sasl = k.MinVersion == 0 && k.MaxVersion >= 1
		case kmsg.Produce:
			produce = k.MaxVersion > 0
		}
	}
	if !sasl || !produce {
		t.Fatalf("advertised keys %+v: want SaslHandshake v0-v1 and kfake's Produce", keys)
	}
}
