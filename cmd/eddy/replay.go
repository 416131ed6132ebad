package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"

	"github.com/eddyhq/eddy"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

const replayUsage = `replay --model NAME --version V [--brokers B] [flags]
       replay --model-file FILE [--brokers B] [flags]

Reproduces a stored snapshot from Kafka: a fresh model with the snapshot's
recorded configuration re-learns the events of the offsets its lineage
names (eddy snapshots --version V lists them: from where the model began
to the snapshot), and the result is compared with the snapshot's state.
With one partition the replay learns the events in the order the service
did and the weights must be bitwise identical; with several it learns
them in order of message time, which is not the order the service
interleaved the partitions in, so it reports how far the weights differ.
The snapshot comes from the running service at --addr (an instance that
holds the model, as for eddy export) or from an export file. When Kafka
no longer holds some of the offsets (retention, DeleteRecords) replay says
exactly which and learns nothing. Exit status 0 when the state was
reproduced bitwise (or, with several partitions, replayed), 1 otherwise.

Refused: a lineage that began with eddy import (its start is not in this
Kafka), a model with a labels topic (the order in which delayed labels met
their events is not recorded), a model with entity histories (windows,
lags, targets) whose lineage began when a challenger replaced it or that
evicts idle entities (entity_ttl).
` + adminConnection

func runReplay(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "replay", replayUsage)
	fs.Lookup("model").Usage = "model name (required unless --model-file)"
	version := fs.Uint64("version", 0, "snapshot version (default: the one serving)")
	modelFile := fs.String("model-file", "", "replay the snapshot of this export file instead of asking the service")
	brokers := fs.String("brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers that hold the model's events topic")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	var k kafkaOptions
	k.register(fs)
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	var file []byte
	switch {
	case *modelFile != "":
		var err error
		if file, err = os.ReadFile(*modelFile); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	case a.model == "":
		fs.Usage()
		return errors.New("replay: --model (with the service at --addr) or --model-file is required")
	default:
		err := a.call(ctx, "replay", func(ctx context.Context, c eddyv1.AdminClient) error {
			resp, err := c.ExportSnapshot(ctx, &eddyv1.ExportSnapshotRequest{Model: a.model, Version: *version}, grpc.MaxCallRecvMsgSize(maxExportBytes))
			file = resp.GetData()
			return err
		})
		if err != nil {
			return err
		}
	}
	cluster, err := k.cluster(*brokers, "")
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	start := time.Now()
	report, err := eddy.Replay(ctx, eddy.ReplayOptions{Cluster: cluster, Export: file, Progress: func(n int64) {
		fmt.Fprintf(env.stderr, "replay: %d events (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
	}})
	if report != nil && *asJSON {
		out, _ := json.MarshalIndent(report, "", "  ")
		fmt.Fprintf(env.stdout, "%s\n", out)
	} else if report != nil {
		printReplay(env, report)
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if !report.Interleaved && !report.Reproduced() {
		return errors.New("replay: the state was not reproduced")
	}
	return nil
}

func printReplay(env *environment, r *eddy.ReplayReport) {
	w := env.stdout
	fmt.Fprintf(w, "model %s version %d: lineage", r.Model, r.Version)
	for _, rg := range r.Ranges {
		fmt.Fprintf(w, " %s", rg)
	}
	fmt.Fprintln(w)
	if len(r.Missing) > 0 {
		fmt.Fprintln(w, "not replayed: Kafka no longer holds these offsets (retention or DeleteRecords removed them, or the topic was recreated):")
		for _, m := range r.Missing {
			fmt.Fprintf(w, "  %s: %d offsets\n", m, m.To-m.From)
		}
		return
	}
	if r.Events == 0 && r.Diff.Weights == 0 {
		return
	}
	fmt.Fprintf(w, "replayed %d events: learned %d (the snapshot: %d), rejected %d (the snapshot's lineage: %d), %d not events\n",
		r.Events, r.Learned, r.WantLearned, r.Rejected, r.WantRejected, r.Undecodable)
	switch {
	case r.Diff.Identical:
		fmt.Fprintf(w, "reproduced bitwise: the state (%d weights, optimizer, scaler, metrics) is identical\n", r.Diff.Weights)
	case r.Interleaved:
		fmt.Fprintf(w, "not bitwise (expected with several partitions: the replay learns them in order of message time, the service in the order it fetched them): %d of %d weights differ, max |Δw| %.3g, relative L2 %.3g\n",
			r.Diff.Differ, r.Diff.Weights, r.Diff.MaxAbs, r.Diff.RelL2)
	default:
		fmt.Fprintf(w, "NOT reproduced: %d of %d weights differ, max |Δw| %.3g, relative L2 %.3g (a different build, decoder limits, or a changed topic?)\n",
			r.Diff.Differ, r.Diff.Weights, r.Diff.MaxAbs, r.Diff.RelL2)
	}
}
