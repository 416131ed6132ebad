package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream"
)

const produceUsage = `produce --file FILE [flags]

Sends a file as events to a Kafka topic, one event per message, with a
progress bar on stderr.

  CSV (.csv): the first row names the columns. --target names the label
  column; without it, events go out without a label (scored, not learned,
  until a label arrives on a labels topic), and produce says so. --key names
  the column used as the message key (the entity key). Every other column
  becomes a feature: numbers as numbers, true/false as booleans, anything
  else as a category (a column listed in --categorical always as a
  category: ids, zip codes); empty cells are left out, and so are columns without a
  name (such as a pandas index). Event ids are <id prefix>-<row number>.

  JSON lines (.jsonl, .ndjson, or --format jsonl): each non-empty line must
  already be an event in eddy's format; it is sent unchanged.

The whole file is checked, with the decoder eddy consumes with, before
anything is sent: if a line is invalid, produce names each invalid line and
its reason and sends nothing. With --skip-invalid it sends the valid events
and reports each skipped line on stderr. It ends with "sent N of M events",
also when interrupted (Ctrl-C stops after the batch in flight: the events
sent are then the first N of the file's M valid ones).

Sending a file again sends all its events again, with the same ids. eddy
does not deduplicate ids: an event with a label is learned again each time
it arrives, so a file sent twice is learned twice. (An unlabeled event that
waits for its label on a labels topic is replaced by a later one with the
same id, and the label is learned once.)

The topic is created (with --partitions) if it does not exist.
`

type produceOptions struct {
	file, format, target, key, topic, brokers, idPrefix string
	rate, partitions                                    int
	skipInvalid                                         bool
	kafka                                               kafkaOptions
	kafkaWait                                           time.Duration
	categorical                                         []string
}

func runProduce(ctx context.Context, env *environment, args []string) error {
	var o produceOptions
	fs := newFlagSet(env, "produce", produceUsage)
	fs.StringVar(&o.file, "file", "", "file to send (required)")
	fs.StringVar(&o.format, "format", "", "csv or jsonl (default: from the file extension)")
	fs.StringVar(&o.target, "target", "", "CSV column holding the label (none: events without labels)")
	fs.StringVar(&o.key, "key", "", "CSV column used as the message key")
	fs.StringVar(&o.topic, "topic", "events", "topic to send to")
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	fs.StringVar(&o.idPrefix, "id-prefix", "", "prefix of CSV event ids (default: the file name without extension)")
	fs.IntVar(&o.rate, "rate", 0, "events per second (0: as fast as possible)")
	fs.IntVar(&o.partitions, "partitions", 1, "partitions of the topic if produce has to create it")
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "send the valid events of a file with invalid lines, reporting each skipped line")
	o.kafka.register(fs)
	fs.Func("categorical", "comma-separated CSV columns sent as categories whatever they look like (ids, zip codes)", func(s string) error {
		o.categorical = append(o.categorical, strings.Split(s, ",")...)
		return nil
	})
	fs.DurationVar(&o.kafkaWait, "kafka-wait", 10*time.Second, "how long to wait for Kafka to be usable before giving up (0: as long as it takes)")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	if o.file == "" {
		fs.Usage()
		return errors.New("produce: --file is required")
	}
	r, err := sendFile(ctx, o, env.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "sent %d of %d events to %s%s\n", r.sent, r.valid, o.topic, r.skippedNote())
	return nil
}

// produceReport counts what sendFile did.
type produceReport struct {
	sent    int // events written to the topic
	valid   int // valid events in the file
	skipped int // invalid lines left out (--skip-invalid)
}

func (r produceReport) skippedNote() string {
	if r.skipped == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d invalid lines skipped)", r.skipped)
}

// maxListedInvalid bounds the invalid lines listed when they stop produce
// (--skip-invalid lists every one it skips).
const maxListedInvalid = 20

// sendFile checks the whole file, then sends its valid events, unless some
// are invalid and o.skipInvalid is false. Notes, skipped lines and progress
// go to stderr.
func sendFile(ctx context.Context, o produceOptions, stderr io.Writer) (produceReport, error) {
	var r produceReport
	format, err := fileFormat(o)
	if err != nil {
		return r, err
	}
	if format == "csv" && o.idPrefix == "" {
		o.idPrefix = strings.TrimSuffix(filepath.Base(o.file), filepath.Ext(o.file))
	}
	var invalid []*invalidLine
	err = eachEvent(o, format, stderr, func(kafka.Message) error { r.valid++; return nil }, func(bad *invalidLine) {
		invalid = append(invalid, bad)
		if o.skipInvalid {
			fmt.Fprintf(stderr, "produce: skipping %s line %d: %s\n", o.file, bad.line, bad.reason)
		} else if len(invalid) <= maxListedInvalid {
			fmt.Fprintf(stderr, "produce: %s line %d: %s\n", o.file, bad.line, bad.reason)
		}
	})
	if err != nil {
		return r, err
	}
	if len(invalid) > 0 && !o.skipInvalid {
		more := ""
		if len(invalid) > maxListedInvalid {
			more = fmt.Sprintf(" (the first %d are listed above)", maxListedInvalid)
		}
		return r, fmt.Errorf("produce: %s: nothing was sent: %d invalid lines%s, the first at line %d: %s; fix them, or pass --skip-invalid to send the %d valid events",
			o.file, len(invalid), more, invalid[0].line, invalid[0].reason, r.valid)
	}
	r.skipped = len(invalid)
	if format == "csv" && o.target == "" {
		fmt.Fprintln(stderr, "produce: no --target given: the events go out without labels (scored, not learned, until labels arrive on a labels topic)")
	}
	cluster, err := o.kafka.cluster(o.brokers, "")
	if err != nil {
		return r, fmt.Errorf("produce: %w", err)
	}
	err = stream.WaitForCluster(ctx, cluster, o.kafkaWait, func(err error) {
		fmt.Fprintf(stderr, "produce: waiting for Kafka at %s: %v\n", o.brokers, err)
	})
	switch {
	case ctx.Err() != nil:
		return r, errors.New("produce: interrupted while waiting for Kafka; nothing was sent")
	case err != nil:
		return r, fmt.Errorf("produce: Kafka not usable within %v (--kafka-wait): %w; nothing was sent", o.kafkaWait, err)
	}
	if err := cluster.EnsureTopics(ctx, []stream.TopicSpec{{Name: o.topic, Partitions: max(o.partitions, 1)}}); err != nil {
		return r, fmt.Errorf("produce: %w", err)
	}
	r.sent, err = sendEvents(ctx, o, format, cluster, r.valid, stderr)
	return r, err
}

func fileFormat(o produceOptions) (string, error) {
	format := o.format
	if format == "" {
		switch strings.ToLower(filepath.Ext(o.file)) {
		case ".csv":
			format = "csv"
		case ".jsonl", ".ndjson", ".json":
			format = "jsonl"
		default:
			return "", fmt.Errorf("produce: cannot tell the format of %s; pass --format csv or jsonl", o.file)
		}
	}
	if format != "csv" && format != "jsonl" {
		return "", fmt.Errorf("produce: unknown --format %q (want csv or jsonl)", format)
	}
	return format, nil
}

// Writing a batch that is in flight when produce is interrupted may take
// this long, so that the count of events sent is exact.
const drainTimeout = 10 * time.Second

// sendEvents sends the valid events of the file, valid of them, and returns
// how many were written.
func sendEvents(ctx context.Context, o produceOptions, format string, cluster stream.Cluster, valid int, stderr io.Writer) (int, error) {
	w := &kafka.Writer{
		Addr:         kafka.TCP(cluster.Brokers...),
		Topic:        o.topic,
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Hash{},
		BatchSize:    1000,
		BatchTimeout: 5 * time.Millisecond,
		Transport:    cluster.Transport(),
	}
	defer w.Close()
	writeCtx, stopWrites := drainContext(ctx, drainTimeout)
	defer stopWrites()
	bar := newProgress(stderr, "producing "+filepath.Base(o.file), valid)
	defer bar.finish()
	pacer := newPacer(o.rate)
	batch := make([]kafka.Message, 0, 500)
	sent := 0
	errInterrupted := errors.New("interrupted")
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n := len(batch)
		err := w.WriteMessages(writeCtx, batch...)
		sent += n - failedWrites(err, n)
		bar.update(sent)
		batch = batch[:0]
		if err != nil {
			return err
		}
		if !pacer.wait(ctx, n) {
			return errInterrupted
		}
		return nil
	}
	err := eachEvent(o, format, io.Discard, func(m kafka.Message) error {
		if ctx.Err() != nil {
			return errInterrupted
		}
		batch = append(batch, m)
		if len(batch) < cap(batch) {
			return nil
		}
		return flush()
	}, func(*invalidLine) {})
	if err == nil {
		err = flush()
	}
	switch {
	case errors.Is(err, errInterrupted):
		return sent, fmt.Errorf("produce: interrupted: sent %d of %d events to %s (sending the file again sends all %d again)", sent, valid, o.topic, valid)
	case err != nil:
		return sent, fmt.Errorf("produce: sent %d of %d events to %s, then: %w", sent, valid, o.topic, err)
	}
	return sent, nil
}

// failedWrites counts the messages of a batch of n that err says were not
// written: all of them unless it is a kafka.WriteErrors, which has one entry
// per message.
func failedWrites(err error, n int) int {
	if err == nil {
		return 0
	}
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return n
	}
	failed := 0
	for _, e := range we {
		if e != nil {
			failed++
		}
	}
	return failed
}

// drainContext returns a context that ends drain after parent does (or
// when cancel is called): work in flight when parent ends may finish.
func drainContext(parent context.Context, drain time.Duration) (ctx context.Context, cancel context.CancelFunc) {
	ctx, cancelCtx := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
			cancelCtx()
		case <-ctx.Done():
		}
	})
	return ctx, func() { stop(); cancelCtx() }
}

// invalidLine is a line of the file that is not a valid event.
type invalidLine struct {
	line   int
	reason string
}

// eachEvent reads the file and calls send with each valid event, in file
// order, and invalid with each invalid line. Events are checked with the
// consumer's decoder, so that what produce sends is never dead-lettered for
// its form. Notes about the file go to notes. It stops at the first error of
// send, or of reading the file.
func eachEvent(o produceOptions, format string, notes io.Writer, send func(kafka.Message) error, invalid func(*invalidLine)) error {
	f, err := os.Open(o.file)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	defer f.Close()
	var src eventSource
	if format == "csv" {
		cs, err := newCSVSource(f, o)
		if err != nil {
			return err
		}
		for _, i := range cs.rows.Unnamed() {
			fmt.Fprintf(notes, "produce: %s: column %d has no name (a pandas index?): left out\n", o.file, i+1)
		}
		src = cs
	} else {
		src = newJSONLSource(f)
	}
	dec := stream.NewDecoder(stream.DecoderConfig{})
	var ev stream.Event
	for {
		m, line, err := src.next()
		var bad *invalidLine
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &bad):
			invalid(bad)
			continue
		case err != nil:
			return fmt.Errorf("produce: %s: %w", o.file, err)
		}
		var de *stream.DecodeError
		if err := dec.Decode(m.Value, &ev); errors.As(err, &de) {
			invalid(&invalidLine{line: line, reason: string(de.Reason) + ": " + de.Detail})
			continue
		}
		if err := send(m); err != nil {
			return err
		}
	}
}

func (e *invalidLine) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.reason) }

type eventSource interface {
	// next returns the next event and its line number; an *invalidLine for
	// a line that cannot be an event; io.EOF at the end.
	next() (m kafka.Message, line int, err error)
}

// csvSource turns the rows of a CSV file into messages: the event of each
// row, with the id <idPrefix>-<row number> and the key column's cell as the
// message key.
type csvSource struct {
	rows     *stream.CSVReader
	idPrefix string
	ev       stream.Event
	id       []byte
	size     int // of the last message: the next one's buffer
}

func newCSVSource(r io.Reader, o produceOptions) (*csvSource, error) {
	rows, err := stream.NewCSVReader(r, stream.CSVConfig{Target: o.target, Key: o.key, Categorical: o.categorical})
	if err != nil {
		return nil, csvHeaderError("produce", o.file, err)
	}
	return &csvSource{rows: rows, idPrefix: o.idPrefix, size: 256}, nil
}

func (s *csvSource) next() (kafka.Message, int, error) {
	if err := s.rows.Read(&s.ev); err != nil {
		return kafka.Message{}, s.rows.Line(), csvRowError(err)
	}
	line := s.rows.Line()
	var m kafka.Message
	if s.ev.Key != nil {
		// The entity key travels as the message key only, as it always has.
		m.Key, s.ev.Key = bytes.Clone(s.ev.Key), nil
	}
	// Every row counts, so that ids do not depend on which rows are valid.
	s.id = strconv.AppendInt(append(append(s.id[:0], s.idPrefix...), '-'), int64(s.rows.Row()), 10)
	s.ev.ID = s.id
	var err error
	if m.Value, err = stream.AppendEvent(make([]byte, 0, s.size), &s.ev); err != nil {
		return kafka.Message{}, line, encodeError(line, err)
	}
	s.size = len(m.Value) + len(m.Value)/4 // room for a longer row without regrowing
	return m, line, nil
}

// csvRowError is an error of stream.CSVReader.Read as csvSource.next returns it.
func csvRowError(err error) error {
	var bad *stream.CSVRowError
	if errors.As(err, &bad) {
		return &invalidLine{line: bad.Line, reason: bad.Reason}
	}
	return err // io.EOF, or the file's
}

// encodeError words a row AppendEvent refuses as the decoder's check would.
func encodeError(line int, err error) error {
	var ee *stream.EncodeError
	if errors.As(err, &ee) {
		return &invalidLine{line: line, reason: string(ee.Reason) + ": " + ee.Detail}
	}
	return err
}

type jsonlSource struct {
	sc   *bufio.Scanner
	line int
}

func newJSONLSource(r io.Reader) *jsonlSource {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	return &jsonlSource{sc: sc}
}

func (s *jsonlSource) next() (kafka.Message, int, error) {
	for s.sc.Scan() {
		s.line++
		line := bytes.TrimSpace(s.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		return kafka.Message{Value: bytes.Clone(line)}, s.line, nil
	}
	if err := s.sc.Err(); err != nil {
		return kafka.Message{}, s.line + 1, fmt.Errorf("line %d: %w", s.line+1, err)
	}
	return kafka.Message{}, 0, io.EOF
}

// progress draws a progress bar: redrawn in place on a terminal, a line per
// 10% otherwise (logs, CI).
type progress struct {
	w        io.Writer
	label    string
	total    int
	start    time.Time
	last     time.Time
	lastTick int
	tty      bool
	// read, when set, measures progress instead of done/total: bytes
	// read of a file of size total (so that a file need not be read
	// twice, once to count its rows).
	read func() int64
}

// fraction is how far the work is, from 0 to 1.
func (p *progress) fraction(done int) float64 {
	switch {
	case p.total <= 0:
		return 1
	case p.read != nil:
		return min(float64(p.read())/float64(p.total), 1)
	}
	return min(float64(done)/float64(p.total), 1)
}

func newProgress(w io.Writer, label string, total int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, label: label, total: total, start: time.Now(), tty: tty}
}

func (p *progress) update(done int) {
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < 100*time.Millisecond && (p.total <= 0 || p.fraction(done) < 1) {
			return
		}
		p.last = now
		fmt.Fprintf(p.w, "\r%s", p.line(done))
		return
	}
	if tick := int(p.fraction(done) * 10); p.total > 0 && tick > p.lastTick {
		p.lastTick = tick
		fmt.Fprintln(p.w, p.line(done))
	}
}

func (p *progress) line(done int) string {
	const width = 30
	frac := p.fraction(done)
	filled := int(frac * width)
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	count := fmt.Sprintf("%d/%d", done, p.total)
	if p.read != nil {
		count = fmt.Sprintf("%d rows", done)
	}
	return fmt.Sprintf("%s [%s%s] %3.0f%% %s  %.0f events/s", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), 100*frac, count, rate)
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
