package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/stream"
)

const produceUsage = `produce --file FILE [flags]

Sends a file as events to a Kafka topic, one event per message, with a
progress bar on stderr.

  CSV (.csv): the first row names the columns. --target names the label
  column (left out: events without a label); --key names the column used as
  the message key (the entity key). Every other column becomes a feature:
  numbers as numbers, true/false as booleans, anything else as a category;
  empty cells are left out. Event ids are <file name>-<row number>.

  JSON lines (.jsonl, .ndjson, or --format jsonl): each non-empty line must
  already be an event in eddy's format; it is sent unchanged.

The topic is created (with --partitions) if it does not exist. A malformed
line stops the command with an error naming the line.
`

type produceOptions struct {
	file, format, target, key, topic, brokers, idPrefix string
	rate, partitions                                    int
}

func runProduce(ctx context.Context, env *environment, args []string) error {
	var o produceOptions
	fs := newFlagSet(env, "produce", produceUsage)
	fs.StringVar(&o.file, "file", "", "file to send (required)")
	fs.StringVar(&o.format, "format", "", "csv or jsonl (default: from the file extension)")
	fs.StringVar(&o.target, "target", "", "CSV column holding the label")
	fs.StringVar(&o.key, "key", "", "CSV column used as the message key")
	fs.StringVar(&o.topic, "topic", "events", "topic to send to")
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "comma-separated Kafka bootstrap brokers")
	fs.StringVar(&o.idPrefix, "id-prefix", "", "prefix of CSV event ids (default: the file name without extension)")
	fs.IntVar(&o.rate, "rate", 0, "events per second (0: as fast as possible)")
	fs.IntVar(&o.partitions, "partitions", 1, "partitions of the topic if produce has to create it")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	if o.file == "" {
		fs.Usage()
		return errors.New("produce: --file is required")
	}
	n, err := produceFile(ctx, o, env.stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "produced %d events to %s\n", n, o.topic)
	return nil
}

// produceFile sends the file and returns the number of events sent.
func produceFile(ctx context.Context, o produceOptions, progressOut io.Writer) (int, error) {
	f, err := os.Open(o.file)
	if err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	defer f.Close()
	total, err := countLines(f)
	if err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	format := o.format
	if format == "" {
		switch strings.ToLower(filepath.Ext(o.file)) {
		case ".csv":
			format = "csv"
		case ".jsonl", ".ndjson", ".json":
			format = "jsonl"
		default:
			return 0, fmt.Errorf("produce: cannot tell the format of %s; pass --format csv or jsonl", o.file)
		}
	}
	var src eventSource
	switch format {
	case "csv":
		total-- // header
		if o.idPrefix == "" {
			o.idPrefix = strings.TrimSuffix(filepath.Base(o.file), filepath.Ext(o.file))
		}
		src, err = newCSVSource(f, o)
	case "jsonl":
		src = newJSONLSource(f)
	default:
		return 0, fmt.Errorf("produce: unknown --format %q (want csv or jsonl)", format)
	}
	if err != nil {
		return 0, err
	}
	brokers := strings.Split(o.brokers, ",")
	if err := stream.EnsureTopics(ctx, brokers, []stream.TopicSpec{{Name: o.topic, Partitions: max(o.partitions, 1)}}); err != nil {
		return 0, fmt.Errorf("produce: %w", err)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        o.topic,
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Hash{},
		BatchSize:    1000,
		BatchTimeout: 5 * time.Millisecond,
		Transport:    &kafka.Transport{},
	}
	defer w.Close()
	bar := newProgress(progressOut, "producing "+filepath.Base(o.file), total)
	pacer := newPacer(o.rate)
	batch := make([]kafka.Message, 0, 500)
	sent := 0
	for {
		batch = batch[:0]
		var srcErr error
		for len(batch) < cap(batch) {
			m, err := src.next()
			if err != nil {
				srcErr = err
				break
			}
			batch = append(batch, m)
		}
		if len(batch) > 0 {
			if err := w.WriteMessages(ctx, batch...); err != nil {
				bar.finish()
				return sent, fmt.Errorf("produce: after %d events: %w", sent, err)
			}
			sent += len(batch)
			bar.update(sent)
		}
		if errors.Is(srcErr, io.EOF) {
			bar.finish()
			return sent, nil
		}
		if srcErr != nil {
			bar.finish()
			return sent, fmt.Errorf("produce: %s: %w", o.file, srcErr)
		}
		if !pacer.wait(ctx, len(batch)) {
			bar.finish()
			return sent, ctx.Err()
		}
	}
}

func countLines(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) > 0 {
			n++
		}
	}
	return n, sc.Err()
}

type eventSource interface {
	next() (kafka.Message, error) // io.EOF at the end
}

type csvSource struct {
	r        *csv.Reader
	header   []string
	target   int
	key      int
	idPrefix string
	row      int
}

func newCSVSource(r io.Reader, o produceOptions) (*csvSource, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("produce: %s: reading the header: %w", o.file, err)
	}
	s := &csvSource{r: cr, header: append([]string(nil), header...), target: -1, key: -1, idPrefix: o.idPrefix}
	for i, h := range s.header {
		switch h {
		case o.target:
			s.target = i
		case o.key:
			s.key = i
		}
	}
	if o.target != "" && s.target < 0 {
		return nil, fmt.Errorf("produce: %s: no column %q for --target (columns: %s)", o.file, o.target, strings.Join(s.header, ", "))
	}
	if o.key != "" && s.key < 0 {
		return nil, fmt.Errorf("produce: %s: no column %q for --key (columns: %s)", o.file, o.key, strings.Join(s.header, ", "))
	}
	return s, nil
}

func (s *csvSource) next() (kafka.Message, error) {
	rec, err := s.r.Read()
	if err != nil {
		return kafka.Message{}, err // csv errors name the line
	}
	s.row++
	line, _ := s.r.FieldPos(0)
	buf := make([]byte, 0, 256)
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendQuote(buf, s.idPrefix+"-"+strconv.Itoa(s.row))
	buf = append(buf, `,"features":{`...)
	first := true
	for i, cell := range rec {
		if i == s.target || i == s.key || cell == "" {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = strconv.AppendQuote(buf, s.header[i])
		buf = append(buf, ':')
		buf = appendCell(buf, cell)
	}
	buf = append(buf, '}')
	if s.target >= 0 && rec[s.target] != "" {
		x, ok := parseLabel(rec[s.target])
		if !ok {
			return kafka.Message{}, fmt.Errorf("line %d: label %q in column %q is not a number or boolean", line, rec[s.target], s.header[s.target])
		}
		buf = append(buf, `,"label":`...)
		buf = strconv.AppendFloat(buf, x, 'g', -1, 64)
	}
	buf = append(buf, '}')
	m := kafka.Message{Value: buf}
	if s.key >= 0 {
		m.Key = []byte(rec[s.key])
	}
	return m, nil
}

// appendCell writes a non-empty CSV cell as a JSON number, boolean or
// string, read by cellKind.
func appendCell(buf []byte, cell string) []byte {
	switch kind, x := cellKind(cell); kind {
	case features.Number:
		return strconv.AppendFloat(buf, x, 'g', -1, 64)
	case features.Bool:
		return strconv.AppendBool(buf, x == 1)
	}
	return strconv.AppendQuote(buf, cell)
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

func (s *jsonlSource) next() (kafka.Message, error) {
	for s.sc.Scan() {
		s.line++
		line := strings.TrimSpace(s.sc.Text())
		if line == "" {
			continue
		}
		if !json.Valid([]byte(line)) {
			return kafka.Message{}, fmt.Errorf("line %d: not valid JSON", s.line)
		}
		return kafka.Message{Value: []byte(line)}, nil
	}
	if err := s.sc.Err(); err != nil {
		return kafka.Message{}, fmt.Errorf("line %d: %w", s.line+1, err)
	}
	return kafka.Message{}, io.EOF
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
		if now.Sub(p.last) < 100*time.Millisecond && done < p.total {
			return
		}
		p.last = now
		fmt.Fprintf(p.w, "\r%s", p.line(done))
		return
	}
	if p.total > 0 && done*10/p.total > p.lastTick {
		p.lastTick = done * 10 / p.total
		fmt.Fprintln(p.w, p.line(done))
	}
}

func (p *progress) line(done int) string {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	filled := int(frac * width)
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	return fmt.Sprintf("%s [%s%s] %3.0f%% %d/%d  %.0f events/s", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), 100*frac, done, p.total, rate)
}

func (p *progress) finish() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
