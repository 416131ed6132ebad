package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// adminConnection explains, in every admin command's --help, how it
// reaches eddy.
const adminConnection = `
It calls the Admin service of a running eddy at --addr (over TLS with
--tls-ca). When serve runs with --admin-token, give the same token with
--admin-token or, to keep it out of the process list, EDDY_ADMIN_TOKEN.
`

const pinning = `
Pinning: promote and rollback pin the version they serve. Automatic promotion
(periodic, challenger, drift) keeps creating snapshots but serves none of them
until "eddy release"; the pin survives restarts, and a pinned version is never
deleted by retention.
`

const snapshotsUsage = `snapshots --model NAME [flags]

Lists the stored snapshots of a model, oldest first: version, when it was
created, why (initial, periodic, challenger, drift), how many examples the
model had learned, its prequential metrics then, and which one serves and
whether an operator pinned it. Snapshots are kept while among the newest
--retain-snapshots or younger than --retain-for (flags of serve); the serving
one always.

With --version V it shows one snapshot's provenance: its parent, the hash
of the configuration that took it (and the configuration), eddy's build,
the offsets of the events topic it learned since its parent and since its
lineage began, per partition, the event times and the examples learned
and rejected. Who put a snapshot into service is in "eddy audit".
` + adminConnection + pinning

const promoteUsage = `promote --model NAME --version V [flags]

Serves stored snapshot version V of a model (see "eddy snapshots") and pins it.
` + adminConnection + pinning

const rollbackUsage = `rollback --model NAME [flags]

Serves the stored snapshot before the one serving now and pins it. Run it
again to go back further.
` + adminConnection + pinning

const releaseUsage = `release --model NAME [flags]

Ends the pin set by promote or rollback: the newest snapshot serves at once
and automatic promotion resumes. Releasing a model that is not pinned changes
nothing.
` + adminConnection + pinning

// adminFlags are the flags every admin command shares.
type adminFlags struct {
	clientFlags
	token string
	model string
}

func newAdminFlagSet(env *environment, name, usage string) (*flag.FlagSet, *adminFlags) {
	fs := newFlagSet(env, name, usage)
	a := &adminFlags{}
	a.register(fs)
	fs.StringVar(&a.token, "admin-token", "", "token of serve --admin-token, sent as \"authorization: Bearer <token>\"")
	fs.StringVar(&a.model, "model", "", "model name (required)")
	return fs, a
}

// parse parses args and checks that a model was named.
func (a *adminFlags) parse(fs *flag.FlagSet, env *environment, args []string) error {
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if a.model == "" {
		fs.Usage()
		return fmt.Errorf("%s: --model is required", fs.Name())
	}
	return nil
}

// call runs fn with an Admin client and a context carrying the deadline and
// the token, and turns a failure into an error a person can act on.
func (a *adminFlags) call(ctx context.Context, command string, fn func(context.Context, eddyv1.AdminClient) error) error {
	conn, err := a.dial()
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	if a.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.token)
	}
	if err := fn(ctx, eddyv1.NewAdminClient(conn)); err != nil {
		st := status.Convert(err)
		hint := ""
		switch st.Code() {
		case codes.Unauthenticated:
			hint = " (give serve's admin token with --admin-token or EDDY_ADMIN_TOKEN)"
		case codes.Unavailable:
			hint = fmt.Sprintf(" (is eddy serving gRPC at %s?)", a.addr)
		}
		return fmt.Errorf("%s: %s: %s%s", command, st.Code(), st.Message(), hint)
	}
	return nil
}

func runSnapshots(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "snapshots", snapshotsUsage)
	limit := fs.Int("limit", 20, "show the newest N snapshots (and the serving one); 0 shows all")
	version := fs.Uint64("version", 0, "show this snapshot's provenance and configuration")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	if *version > 0 {
		var resp *eddyv1.GetSnapshotResponse
		err := a.call(ctx, "snapshots", func(ctx context.Context, c eddyv1.AdminClient) (err error) {
			resp, err = c.GetSnapshot(ctx, &eddyv1.GetSnapshotRequest{Model: a.model, Version: *version})
			return err
		})
		if err != nil {
			return err
		}
		writeResponse(env.stdout, *asJSON, resp, func(w io.Writer) { printProvenance(w, a.model, resp) })
		return nil
	}
	if *limit < 0 {
		return errors.New("snapshots: --limit must not be negative")
	}
	var list *eddyv1.ListSnapshotsResponse
	err := a.call(ctx, "snapshots", func(ctx context.Context, c eddyv1.AdminClient) (err error) {
		list, err = c.ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: a.model})
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		out, _ := protojson.Marshal(list)
		fmt.Fprintln(env.stdout, string(out))
		return nil
	}
	return printSnapshots(env.stdout, a.model, list, *limit, time.Now())
}

// printSnapshots writes list as a table: a line on what serves and why,
// then one row per snapshot, oldest first, the newest limit of them (0:
// all) and the serving one.
func printSnapshots(w io.Writer, model string, list *eddyv1.ListSnapshotsResponse, limit int, now time.Time) error {
	switch serving := list.GetServingVersion(); {
	case serving == 0:
		fmt.Fprintf(w, "model %s: no snapshot serves yet\n", model)
	case list.GetPinned():
		fmt.Fprintf(w, "model %s: v%d serves, pinned by an operator (\"eddy release --model %s\" resumes automatic promotion)\n", model, serving, model)
	default:
		fmt.Fprintf(w, "model %s: v%d serves, chosen by automatic promotion\n", model, serving)
	}
	snaps := list.GetSnapshots()
	shown := snaps
	if limit > 0 && len(snaps) > limit {
		shown = nil
		for i, s := range snaps {
			if i >= len(snaps)-limit || s.GetServing() || s.GetPinned() {
				shown = append(shown, s)
			}
		}
		fmt.Fprintf(w, "%d snapshots stored; the newest %d shown (--limit 0 shows all)\n", len(snaps), limit)
	}
	if len(shown) == 0 {
		fmt.Fprintln(w, "no snapshots stored")
		return nil
	}
	metrics := metricColumns(shown)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "VERSION\tCREATED (UTC)\tAGE\tREASON\tLEARNED")
	for _, m := range metrics {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(m))
	}
	fmt.Fprintln(tw, "\tSTATUS")
	for _, s := range shown {
		created := s.GetCreated().AsTime()
		fmt.Fprintf(tw, "v%d\t%s\t%s\t%s\t%d", s.GetVersion(), created.UTC().Format(time.DateTime), age(now.Sub(created)), s.GetReason(), s.GetLearned())
		for _, m := range metrics {
			if x, ok := s.GetMetrics()[m]; ok {
				fmt.Fprintf(tw, "\t%.4f", x)
			} else {
				fmt.Fprint(tw, "\t-")
			}
		}
		var marks []string
		if s.GetServing() {
			marks = append(marks, "serving")
		}
		if s.GetPinned() {
			marks = append(marks, "pinned")
		}
		if len(marks) > 0 { // else end the row here: no trailing blanks
			fmt.Fprintf(tw, "\t%s", strings.Join(marks, ", "))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// metricColumns returns the metric names of snaps in a fixed order: the
// well-known ones first, then any others alphabetically. The example count
// is left out: it is the learned column.
func metricColumns(snaps []*eddyv1.SnapshotInfo) []string {
	known := []string{"accuracy", "log_loss", "mae", "rmse", "rolling"}
	seen := make(map[string]bool)
	for _, s := range snaps {
		for name := range s.GetMetrics() {
			seen[name] = true
		}
	}
	delete(seen, "n")
	var out, others []string
	for _, name := range known {
		if seen[name] {
			out = append(out, name)
			delete(seen, name)
		}
	}
	for name := range seen {
		others = append(others, name)
	}
	slices.Sort(others)
	return append(out, others...)
}

// age formats how long ago something happened, to the second below an
// hour and to the minute above.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Hour:
		return d.Truncate(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	}
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}

func runPromote(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "promote", promoteUsage)
	version := fs.Uint64("version", 0, "snapshot version to serve and pin (required; see eddy snapshots)")
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	if *version == 0 {
		fs.Usage()
		return errors.New("promote: --version is required (see eddy snapshots); eddy release returns to automatic promotion")
	}
	return a.change(ctx, env.stdout, "promote", func(ctx context.Context, c eddyv1.AdminClient) (*eddyv1.PromoteResponse, error) {
		return c.Promote(ctx, &eddyv1.PromoteRequest{Model: a.model, Version: *version})
	})
}

func runRollback(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "rollback", rollbackUsage)
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	return a.change(ctx, env.stdout, "rollback", func(ctx context.Context, c eddyv1.AdminClient) (*eddyv1.PromoteResponse, error) {
		return c.Rollback(ctx, &eddyv1.RollbackRequest{Model: a.model})
	})
}

func runRelease(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "release", releaseUsage)
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	return a.change(ctx, env.stdout, "release", func(ctx context.Context, c eddyv1.AdminClient) (*eddyv1.PromoteResponse, error) {
		return c.Release(ctx, &eddyv1.ReleaseRequest{Model: a.model})
	})
}

// change runs a command that changes what serves and reports the outcome.
func (a *adminFlags) change(ctx context.Context, w io.Writer, command string, fn func(context.Context, eddyv1.AdminClient) (*eddyv1.PromoteResponse, error)) error {
	var resp *eddyv1.PromoteResponse
	err := a.call(ctx, command, func(ctx context.Context, c eddyv1.AdminClient) (err error) {
		resp, err = fn(ctx, c)
		return err
	})
	if err != nil {
		return err
	}
	if resp.GetPinned() {
		fmt.Fprintf(w, "model %s: v%d serves, pinned; automatic promotion keeps creating snapshots but serves none until \"eddy release --model %s\"\n",
			resp.GetModel(), resp.GetServingVersion(), resp.GetModel())
	} else {
		fmt.Fprintf(w, "model %s: v%d serves; automatic promotion chooses from now on\n", resp.GetModel(), resp.GetServingVersion())
	}
	return nil
}

// writeResponse writes an Admin response as protojson (asJSON) or as text.
func writeResponse(w io.Writer, asJSON bool, resp proto.Message, text func(io.Writer)) {
	if asJSON {
		out, _ := protojson.Marshal(resp)
		fmt.Fprintln(w, string(out))
		return
	}
	text(w)
}

// printProvenance writes one snapshot's provenance.
func printProvenance(w io.Writer, model string, r *eddyv1.GetSnapshotResponse) {
	s := r.GetSnapshot()
	fmt.Fprintf(w, "model %s v%d: %s, created %s, learned %d\n", model, s.GetVersion(), s.GetReason(), s.GetCreated().AsTime().UTC().Format(time.DateTime), s.GetLearned())
	p := s.GetProvenance()
	if p == nil {
		fmt.Fprintln(w, "no provenance: taken before eddy recorded it")
		return
	}
	parent := "none (the first snapshot)"
	if p.GetParent() > 0 {
		parent = fmt.Sprintf("v%d", p.GetParent())
	}
	fmt.Fprintf(w, "parent: %s\nconfiguration: sha256 %s\nbuild: %s\n", parent, p.GetConfigHash(), p.GetBuild())
	if p.GetDetection() > 0 {
		fmt.Fprintf(w, "answers drift detection #%d\n", p.GetDetection())
	}
	switch p.GetOrigin() {
	case "":
		fmt.Fprintln(w, "lineage: began with the model's first event")
	case "import":
		i := p.GetImported()
		fmt.Fprintf(w, "lineage: began with an import of model %s v%d (learned %d, configuration sha256 %s, build %s), file sha256 %s\n",
			i.GetModel(), i.GetVersion(), i.GetLearned(), i.GetConfigHash(), i.GetBuild(), i.GetSha256())
	default:
		fmt.Fprintf(w, "lineage: began when a %s replaced the model\n", p.GetOrigin())
	}
	fmt.Fprintf(w, "examples: %d learned (%d since the parent), %d rejected (%d since the parent)\n",
		p.GetLearned(), p.GetLearnedSinceParent(), p.GetRejected(), p.GetRejectedSinceParent())
	times := func(a, b interface{ AsTime() time.Time }, ok bool) string {
		if !ok {
			return "-"
		}
		return a.AsTime().UTC().Format(time.RFC3339) + " to " + b.AsTime().UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "event times: %s since the parent, %s since the lineage began\n",
		times(p.GetFirstEventTime(), p.GetLastEventTime(), p.FirstEventTime != nil), times(p.GetBeganEventTime(), p.GetNewestEventTime(), p.BeganEventTime != nil))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tSINCE PARENT [FROM, TO)\tSINCE THE LINEAGE BEGAN [FROM, TO)")
	for i, r := range p.GetSinceParent() {
		began := ""
		if i < len(p.GetSinceBegan()) {
			b := p.GetSinceBegan()[i]
			began = fmt.Sprintf("[%d, %d)", b.GetFrom(), b.GetTo())
		}
		fmt.Fprintf(tw, "%s\t%d\t[%d, %d)\t%s\n", r.GetTopic(), r.GetPartition(), r.GetFrom(), r.GetTo(), began)
	}
	tw.Flush()
	if r.GetConfigJson() != "" {
		fmt.Fprintf(w, "configuration (JSON): %s\n", r.GetConfigJson())
	}
}
