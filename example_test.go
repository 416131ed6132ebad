package eddy_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
)

// A Go program runs eddy on the embedded development broker, sends it
// three labeled events with kafka-go, and stops it once it has learned
// them. With Config.Brokers it would use a Kafka cluster instead.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "eddy-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := eddy.Config{
		DataDir:      dir,
		Ephemeral:    true,                                                           // the embedded broker keeps nothing on disk
		EmbeddedAddr: "127.0.0.1:0",                                                  // any free port: svc.Brokers() names it
		GRPCAddr:     "127.0.0.1:0",                                                  // Predict and Admin: svc.GRPCAddr()
		Learner:      engine.Config{Models: []learner.ModelConfig{{Name: "clicks"}}}, // reads topic "events"
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	svc, err := eddy.New(ctx, cfg, nil, prometheus.NewRegistry())
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	w := &kafka.Writer{Addr: kafka.TCP(svc.Brokers()...), Topic: "events", RequiredAcks: kafka.RequireAll}
	defer w.Close()
	err = w.WriteMessages(ctx,
		kafka.Message{Key: []byte("user-42"), Value: []byte(`{"id":"e-1","features":{"amount":12.5,"country":"DE"},"label":1}`)},
		kafka.Message{Key: []byte("user-7"), Value: []byte(`{"id":"e-2","features":{"amount":3,"country":"FR"},"label":0}`)},
		kafka.Message{Key: []byte("user-42"), Value: []byte(`{"id":"e-3","features":{"amount":20,"country":"DE"},"label":1}`)},
	)
	if err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); svc.Stats().Models[0].Learned < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	err = <-done
	fmt.Printf("learned %d examples; stopped: %v\n", svc.Stats().Models[0].Learned, err)
	// Output: learned 3 examples; stopped: <nil>
}
