package eddy_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
)

// describing is a Registerer that also keeps every collector registered,
// to list the metrics a service can export before any has a value.
type describing struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (d *describing) Register(c prometheus.Collector) error {
	d.collectors = append(d.collectors, c)
	return d.Registry.Register(c)
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

var descPattern = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// exportedMetrics returns the metrics a service of cfg registers, with
// their label names.
func exportedMetrics(t *testing.T, cfg eddy.Config) map[string][]string {
	t.Helper()
	reg := &describing{Registry: prometheus.NewRegistry()}
	svc, err := eddy.New(context.Background(), cfg, testLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	_ = svc // registered; never run
	out := make(map[string][]string)
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := descPattern.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			var labels []string
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			out[m[1]] = labels
		}
	}
	return out
}

// TestTheDashboardQueriesOnlyWhatEddyExports reads every query of the
// Grafana dashboard (panels and annotations) and checks that each eddy_
// metric it names is one eddy registers, and that every label it filters,
// groups or formats by is one of that metric's labels: a renamed metric or
// label fails here instead of leaving an empty panel.
func TestTheDashboardQueriesOnlyWhatEddyExports(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(".deploy", "grafana", "dashboards", "eddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Name        string `json:"name"`
				Expr        string `json:"expr"`
				TitleFormat string `json:"titleFormat"`
				TagKeys     string `json:"tagKeys"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("eddy.json: %v", err)
	}
	model := learner.ModelConfig{Name: "m", Drift: learner.DriftConfig{Detector: "adwin"}}
	exported := exportedMetrics(t, testConfig(startBroker(t), t.TempDir(), model))

	type query struct {
		where, expr, labelsUsed string
		tags                    []string
	}
	var queries []query
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			queries = append(queries, query{where: "panel " + p.Title, expr: q.Expr, labelsUsed: q.LegendFormat})
		}
	}
	for _, a := range dash.Annotations.List {
		if a.Expr != "" {
			var tags []string
			for _, k := range strings.Split(a.TagKeys, ",") {
				if k = strings.TrimSpace(k); k != "" {
					tags = append(tags, k)
				}
			}
			queries = append(queries, query{where: "annotation " + a.Name, expr: a.Expr, labelsUsed: a.TitleFormat, tags: tags})
		}
	}
	metricName := regexp.MustCompile(`\beddy_[a-z0-9_]+`)
	selectorLabels := regexp.MustCompile(`\{([^}]*)\}`)
	byLabels := regexp.MustCompile(`\bby \(([^)]*)\)`)
	templateLabels := regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	checked := map[string]bool{}
	for _, q := range queries {
		names := metricName.FindAllString(q.expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q queries no eddy metric", q.where, q.expr)
			continue
		}
		var labels []string
		for _, name := range names {
			base := name
			if _, ok := exported[name]; !ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(name, suffix); ok {
						if _, ok := exported[b]; ok {
							base = b
						}
					}
				}
			}
			ls, ok := exported[base]
			if !ok {
				t.Errorf("%s: %s is not a metric eddy exports", q.where, name)
				continue
			}
			checked[base] = true
			labels = append(labels, ls...)
			if base != name {
				labels = append(labels, "le")
			}
		}
		var used []string
		for _, m := range selectorLabels.FindAllStringSubmatch(q.expr, -1) {
			for _, matcher := range strings.Split(m[1], ",") {
				if name, _, ok := strings.Cut(matcher, "="); ok {
					used = append(used, strings.TrimRight(strings.TrimSpace(name), "!~"))
				}
			}
		}
		for _, m := range byLabels.FindAllStringSubmatch(q.expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				used = append(used, strings.TrimSpace(l))
			}
		}
		for _, m := range templateLabels.FindAllStringSubmatch(q.labelsUsed, -1) {
			used = append(used, m[1])
		}
		used = append(used, q.tags...)
		for _, l := range used {
			if !slices.Contains(labels, l) {
				t.Errorf("%s: label %q is not a label of %v (labels %v)", q.where, l, names, labels)
			}
		}
	}
	t.Logf("%d queries over %d eddy metrics checked", len(queries), len(checked))
}
