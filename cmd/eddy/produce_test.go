package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream"
)

// topicMessages reads every message of partition 0 of topic; none if the
// topic does not exist.
func topicMessages(t *testing.T, broker, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	probe, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	_, err = probe.ReadPartitions(topic)
	probe.Close()
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		return nil
	}
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, 0)
	if err != nil {
		t.Fatalf("dial the leader of %s: %v", topic, err)
	}
	last, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for int64(len(out)) < last {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s after %d of %d messages: %v", topic, len(out), last, err)
		}
		out = append(out, m)
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func decodeEvent(t *testing.T, m kafka.Message) stream.Event {
	t.Helper()
	var ev stream.Event
	if err := stream.NewDecoder(stream.DecoderConfig{}).Decode(m.Value, &ev); err != nil {
		t.Fatalf("sent event %s does not decode: %v", m.Value, err)
	}
	return ev
}

func TestProduceSendsNothingFromAFileWithAnInvalidLine(t *testing.T) {
	tests := []struct {
		name, file, content string
		args                []string
		wantLines           []string
	}{
		{"a csv with a bad label and a short row", "a.csv", "x,label\n1,0\n2,1\n3,maybe\n4,0\n5\n6,1\n",
			[]string{"--target", "label"}, []string{"line 4", `"maybe"`, "line 6", "wrong number of fields"}},
		{"json lines with an event eddy would dead-letter", "b.jsonl",
			`{"id":"1","features":{"a":1}}` + "\n" + `{"id":"2","features":{"a":NaN}}` + "\n" + `{"features":{"a":1}}` + "\n",
			nil, []string{"line 2", "non_finite", "line 3", "missing_field"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker := startBroker(t)
			path := writeFile(t, tt.file, tt.content)
			_, stderr, err := runCLI(t, nil, append([]string{"produce", "--file", path, "--brokers", broker, "--topic", "t"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), "nothing was sent") || !strings.Contains(err.Error(), "--skip-invalid") {
				t.Fatalf("err = %v, want one saying nothing was sent and offering --skip-invalid", err)
			}
			for _, want := range tt.wantLines {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not mention %s:\n%s", want, stderr)
				}
			}
			if msgs := topicMessages(t, broker, "t"); len(msgs) != 0 {
				t.Fatalf("%d events were sent from a file with invalid lines, want none", len(msgs))
			}
		})
	}
}

func TestProduceWithSkipInvalidSendsTheValidRowsAndReportsEachSkippedLine(t *testing.T) {
	broker := startBroker(t)
	path := writeFile(t, "rows.csv", "x,label\n1,0\n2,maybe\n3,1\n4\n5,0\n")
	stdout, stderr, err := runCLI(t, nil, "produce", "--file", path, "--brokers", broker, "--topic", "t", "--target", "label", "--skip-invalid")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"skipping", "line 3", `"maybe"`, "line 5", "wrong number of fields"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not mention %s:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "sent 3 of 3 events to t (2 invalid lines skipped)") {
		t.Errorf("stdout = %q, want the count of events sent and lines skipped", stdout)
	}
	var ids []string
	for _, m := range topicMessages(t, broker, "t") {
		ids = append(ids, string(decodeEvent(t, m).ID))
	}
	// Ids number every row, so a skipped row does not shift the others'.
	if want := "rows-1 rows-3 rows-5"; strings.Join(ids, " ") != want {
		t.Fatalf("sent ids %v, want %s", ids, want)
	}
}

func TestProduceReportsSentOfTotalWhenInterrupted(t *testing.T) {
	const rows = 3000
	broker := startBroker(t)
	var csv strings.Builder
	csv.WriteString("x,label\n")
	for i := range rows {
		fmt.Fprintf(&csv, "%d,%d\n", i, i%2)
	}
	path := writeFile(t, "big.csv", csv.String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(700 * time.Millisecond) // at 1000 events/s, about 700 are sent
		cancel()
	}()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"produce", "--file", path, "--brokers", broker, "--topic", "t", "--target", "label", "--rate", "1000"},
		func(string) string { return "" }, &stdout, &stderr)
	m := regexp.MustCompile(`interrupted: sent (\d+) of 3000 events to t`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("err = %v, want it to say how many of the 3000 events were sent", err)
	}
	sent, _ := strconv.Atoi(m[1])
	if sent == 0 || sent == rows {
		t.Fatalf("sent %d of %d: the test needs an interruption mid-file", sent, rows)
	}
	if got := len(topicMessages(t, broker, "t")); got != sent {
		t.Fatalf("the topic holds %d events, produce said it sent %d", got, sent)
	}
}

func TestProduceNeverUsesAnUnnamedColumnAsTheLabel(t *testing.T) {
	broker := startBroker(t)
	// pandas' to_csv writes its index as a first column without a name.
	path := writeFile(t, "pandas.csv", ",amount,country\n0,12.5,DE\n1,3,FR\n")
	_, stderr, err := runCLI(t, nil, "produce", "--file", path, "--brokers", broker, "--topic", "t")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "no --target") || !strings.Contains(stderr, "without labels") {
		t.Errorf("stderr does not say the events go out without labels:\n%s", stderr)
	}
	if !strings.Contains(stderr, "column 1 has no name") {
		t.Errorf("stderr does not say the unnamed column is left out:\n%s", stderr)
	}
	msgs := topicMessages(t, broker, "t")
	if len(msgs) != 2 {
		t.Fatalf("%d events sent, want 2", len(msgs))
	}
	for _, m := range msgs {
		ev := decodeEvent(t, m)
		if ev.HasLabel {
			t.Errorf("event %s has label %v without --target", ev.ID, ev.Label)
		}
		for _, f := range ev.Fields {
			if len(f.Name) == 0 {
				t.Errorf("event %s has the unnamed column as a feature: %s", ev.ID, m.Value)
			}
		}
	}
}

func TestProduceWritesEveryCellAsValidJSON(t *testing.T) {
	broker := startBroker(t)
	// A control character, a vertical tab and a quote, which strconv.Quote
	// writes in Go syntax that is not JSON.
	path := writeFile(t, "cells.csv", "name,label\n\"a\x01b\vc\"\"d\",1\n")
	if _, _, err := runCLI(t, nil, "produce", "--file", path, "--brokers", broker, "--topic", "t", "--target", "label"); err != nil {
		t.Fatal(err)
	}
	msgs := topicMessages(t, broker, "t")
	if len(msgs) != 1 {
		t.Fatalf("%d events sent, want 1", len(msgs))
	}
	ev := decodeEvent(t, msgs[0])
	if len(ev.Fields) != 1 || string(ev.Fields[0].Str) != "a\x01b\vc\"d" {
		t.Fatalf("event %s decodes to %+v, want the cell as it was", msgs[0].Value, ev.Fields)
	}
}

func TestProduceRefusesACellThatIsNotUTF8(t *testing.T) {
	broker := startBroker(t)
	path := writeFile(t, "latin1.csv", "city,label\nK\xf6ln,1\nBonn,0\n")
	_, stderr, err := runCLI(t, nil, "produce", "--file", path, "--brokers", broker, "--topic", "t", "--target", "label")
	if err == nil || !strings.Contains(stderr, "line 2") || !strings.Contains(stderr, "UTF-8") {
		t.Fatalf("err = %v, stderr:\n%s\nwant line 2 refused as not UTF-8", err, stderr)
	}
}

// BenchmarkProduceReadsElec2 measures produce's per-row work without Kafka:
// elec2.csv (45,312 rows) read, turned into events, encoded and checked with
// the consumer's decoder, as the pass before sending does.
func BenchmarkProduceReadsElec2(b *testing.B) {
	o := produceOptions{file: datasetPath(b, "elec2.csv"), target: "up", idPrefix: "elec2"}
	b.ReportAllocs()
	var rows int
	start := time.Now()
	for b.Loop() {
		err := eachEvent(o, "csv", io.Discard, func(kafka.Message) error { rows++; return nil }, func(bad *invalidLine) { b.Fatal(bad) })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}
