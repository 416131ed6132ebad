package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream"
)

// TestABrokerOutageIsVisibleAndLosesNothing stops the broker under a
// running service and starts it again on the same port and data: while it
// is down /healthz answers 503 and eddy_kafka_broker_up is 0; afterwards
// eddy resumes by itself and learns every event exactly once.
func TestABrokerOutageIsVisibleAndLosesNothing(t *testing.T) {
	dataDir := t.TempDir()
	b, err := stream.StartEmbeddedBroker(stream.EmbeddedConfig{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	svc := startTestService(t, testOptions(addr, t.TempDir(), learner.ModelConfig{Name: "m"}))
	produceSEAEvents(t, addr, "events", 5000)
	waitFor(t, 30*time.Second, "the first 5,000 learned", func() bool { return svc.learned("m") == 5000 })

	b.Close()
	health := func() (int, string) {
		resp, err := http.Get("http://" + svc.metricsAddr() + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitFor(t, 10*time.Second, "the outage to show", func() bool {
		code, _ := health()
		return code == http.StatusServiceUnavailable && svc.gauge("eddy_kafka_broker_up", map[string]string{}) == 0
	})
	_, body := health()
	t.Logf("during the outage /healthz says: %s", strings.TrimSpace(body))

	b, err = stream.StartEmbeddedBroker(stream.EmbeddedConfig{Port: stream.PortOf(addr), DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	waitFor(t, 30*time.Second, "the broker to be seen again", func() bool {
		code, _ := health()
		return code == http.StatusOK && svc.gauge("eddy_kafka_broker_up", map[string]string{}) == 1
	})
	if err := produceN(context.Background(), []string{addr}, "events", 5000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "all 10,000 learned", func() bool { return svc.learned("m") == 10000 })
	if err := svc.stop(); err != nil {
		t.Fatal(err)
	}
	if got := svc.engine.Models()[0].Learned(); got != 10000 {
		t.Fatalf("learned %d, want exactly 10,000", got)
	}
}
