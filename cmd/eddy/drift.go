package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/eddyhq/eddy/drift"
)

// driftUsage is completed with the table of detectors and their defaults.
const driftUsage = `drift [--detector KIND] [parameter flags] < VALUES

Reads one number per line from stdin, feeds them to a concept-drift detector
and prints the 0-based index of every value at which it detects drift, one
per line, and nothing else. Blank lines are skipped and not counted: the
index counts values, not lines. A line that is not a number stops the command
with an error naming its line number. NaN, Inf and values beyond ±1e100 count
as values but the detectors ignore them. The detectors are River's, with
River's defaults, and reset themselves after a detection as River's do.

Detectors and their parameters, with the defaults:
%s
ddm and eddm expect prediction outcomes: 0 for correct, anything else (1) for
an error. A parameter flag that the chosen detector does not have is an error.
`

// driftParamFlags are the numeric parameter flags: River's parameter names
// with dashes, and what they mean.
var driftParamFlags = []struct{ flag, help string }{
	{"delta", "adwin: confidence δ of the cut test; page-hinkley: tolerated change"},
	{"clock", "adwin: values between two checks of the window"},
	{"max-buckets", "adwin: buckets of each size kept before merging"},
	{"min-window-length", "adwin: fewest values on either side of a cut"},
	{"grace-period", "adwin: values before the first check"},
	{"min-instances", "page-hinkley: values before a detection is possible"},
	{"threshold", "page-hinkley: detection threshold λ"},
	{"alpha", "page-hinkley: forgetting factor; eddm: warning level; kswin: significance level of the KS test"},
	{"warm-start", "ddm, eddm: values (eddm: and errors) before a detection is possible"},
	{"warning-threshold", "ddm: standard deviations for a warning"},
	{"drift-threshold", "ddm: standard deviations for drift"},
	{"beta", "eddm: drift level"},
	{"window-size", "kswin: values kept"},
	{"stat-size", "kswin: newest values tested against as many older ones"},
	{"seed", "kswin: seed of the sampling generator"},
}

// paramFlag is a numeric parameter flag. It has no default of its own: an
// unset flag leaves the parameter to the detector's default.
type paramFlag struct{ value float64 }

func (f *paramFlag) String() string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(f.value, 'g', -1, 64)
}

func (f *paramFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	f.value = v
	return nil
}

func runDrift(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "drift", fmt.Sprintf(driftUsage, driftDefaultsTable()))
	kind := fs.String("detector", drift.KindADWIN, "detector: "+strings.Join(drift.Kinds(), ", "))
	mode := fs.String("mode", "", "page-hinkley: direction watched, up, down or both (default both)")
	values := make(map[string]*paramFlag, len(driftParamFlags))
	for _, p := range driftParamFlags {
		values[p.flag] = &paramFlag{}
		fs.Var(values[p.flag], p.flag, p.help)
	}
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	params := drift.Params{Numbers: make(map[string]float64), Mode: *mode}
	var given []string
	fs.Visit(func(f *flag.Flag) {
		if v, ok := values[f.Name]; ok {
			params.Numbers[strings.ReplaceAll(f.Name, "-", "_")] = v.value
			given = append(given, f.Name)
		} else if f.Name == "mode" {
			given = append(given, f.Name)
		}
	})
	if err := checkDriftFlags(*kind, given); err != nil {
		return err
	}
	detector, err := drift.New(*kind, params)
	if err != nil {
		return err
	}
	in := env.stdin
	if in == nil {
		in = strings.NewReader("")
	}
	out := bufio.NewWriter(env.stdout)
	err = detectDrift(ctx, detector, in, out)
	if flushErr := out.Flush(); err == nil {
		err = flushErr
	}
	return err
}

// checkDriftFlags rejects parameter flags that the detector does not have,
// naming them as flags.
func checkDriftFlags(kind string, given []string) error {
	names, err := drift.ParamNames(kind)
	if err != nil {
		return fmt.Errorf("drift: unknown --detector %q (want %s)", kind, strings.Join(drift.Kinds(), ", "))
	}
	flags := make([]string, len(names))
	for i, n := range names {
		flags[i] = "--" + strings.ReplaceAll(n, "_", "-")
	}
	for _, g := range given {
		if !slices.Contains(flags, "--"+g) {
			return fmt.Errorf("drift: --%s does not apply to the %s detector (its flags: %s)", g, kind, strings.Join(flags, ", "))
		}
	}
	return nil
}

// maxDriftLine bounds the length of an input line.
const maxDriftLine = 1 << 20

// detectDrift feeds every number of in to d and writes the index of each
// detection to out. It checks ctx every few thousand lines.
func detectDrift(ctx context.Context, d drift.Detector, in io.Reader, out *bufio.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64*1024), maxDriftLine)
	var (
		line, index int
		buf         []byte
	)
	for sc.Scan() {
		line++
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		v, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: ±Inf, which d ignores
			return fmt.Errorf("drift: line %d: %q is not a number", line, text)
		}
		if d.Update(v) {
			buf = strconv.AppendInt(buf[:0], int64(index), 10)
			buf = append(buf, '\n')
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		index++
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("drift: reading line %d: %w", line+1, err)
	}
	return nil
}

// driftDefaultsTable lists each detector's flags with River's defaults, from
// the drift package's own defaults.
func driftDefaultsTable() string {
	adwin := drift.ADWINConfig{}
	adwin.EnsureDefaults()
	ph := drift.PageHinkleyConfig{}
	ph.EnsureDefaults()
	ddm := drift.DDMConfig{}
	ddm.EnsureDefaults()
	eddm := drift.EDDMConfig{}
	eddm.EnsureDefaults()
	kswin := drift.KSWINConfig{}
	kswin.EnsureDefaults()
	rows := []struct{ kind, flags string }{
		{drift.KindADWIN, fmt.Sprintf("--delta %g --clock %d --max-buckets %d --min-window-length %d --grace-period %d",
			adwin.Delta, adwin.Clock, adwin.MaxBuckets, adwin.MinWindowLength, adwin.GracePeriod)},
		{drift.KindPageHinkley, fmt.Sprintf("--min-instances %d --delta %g --threshold %g --alpha %g --mode %s",
			ph.MinInstances, ph.Delta, ph.Threshold, ph.Alpha, ph.Mode)},
		{drift.KindDDM, fmt.Sprintf("--warm-start %d --warning-threshold %g --drift-threshold %g",
			ddm.WarmStart, ddm.WarningThreshold, ddm.DriftThreshold)},
		{drift.KindEDDM, fmt.Sprintf("--warm-start %d --alpha %g --beta %g", eddm.WarmStart, eddm.Alpha, eddm.Beta)},
		{drift.KindKSWIN, fmt.Sprintf("--alpha %g --window-size %d --stat-size %d --seed %d",
			kswin.Alpha, kswin.WindowSize, kswin.StatSize, kswin.Seed)},
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-13s %s\n", r.kind, r.flags)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
