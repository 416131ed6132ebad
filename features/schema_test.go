package features

import (
	"strings"
	"testing"
)

func ptr(x float64) *float64 { return &x }

func testSchema(onViolation, newFeatures string) *Schema {
	return &Schema{OnViolation: onViolation, NewFeatures: newFeatures, Features: map[string]FeatureSpec{
		"f1":  {Kind: KindNumber, Required: true, Min: ptr(0), Max: ptr(10)},
		"f2":  {Kind: KindNumber},
		"zip": {Kind: KindCategory},
		"vip": {Kind: KindBoolean},
	}}
}

// TestACheckerTellsEachViolationApartAndAppliesItsPolicy runs the ways an
// event breaks a schema through each policy.
func TestACheckerTellsEachViolationApartAndAppliesItsPolicy(t *testing.T) {
	bad := []Field{cat("f1", "3.2"), num("F2", 1), num("zip", 2040), boolean("vip", true), num("color", 1)}
	for _, tc := range []struct {
		onViolation, newFeatures string
		reject                   bool
		kept                     []string // names of the fields kept, in order
	}{
		{"", "", true, []string{"F2", "zip", "vip", "color"}},
		{PolicyIgnoreFeature, PolicyIgnore, false, []string{"zip", "vip"}},
		{PolicyAccept, PolicyAccept, false, []string{"f1", "F2", "zip", "vip", "color"}},
		{PolicyIgnoreFeature, PolicyDeadLetter, true, []string{"zip", "vip"}},
	} {
		s := testSchema(tc.onViolation, tc.newFeatures)
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		c := NewChecker(s)
		out, viol, reject := c.Check(bad)
		var kept []string
		for _, f := range out {
			kept = append(kept, string(f.Name))
		}
		if reject != tc.reject || strings.Join(kept, ",") != strings.Join(tc.kept, ",") {
			t.Errorf("%s/%s: reject %v, kept %v; want %v, %v", tc.onViolation, tc.newFeatures, reject, kept, tc.reject, tc.kept)
		}
		kinds := map[string]string{}
		for _, v := range viol {
			kinds[v.Feature] = v.Kind
		}
		if kinds["f1"] != ViolationWrongKind {
			t.Errorf("%s/%s: violations %+v: want f1 as wrong_kind", tc.onViolation, tc.newFeatures, viol)
		}
		if tc.newFeatures == PolicyDeadLetter && (kinds["F2"] != ViolationUnknown || !strings.Contains(detail(viol, "F2"), `did you mean "f2"`)) {
			t.Errorf("violations %+v: want F2 unknown with a suggestion", viol)
		}
		// f1 came as a string and, with its string dropped or refused, f1
		// is missing too only when nothing named f1 came: it did.
		if kinds["f1"] == ViolationMissing {
			t.Errorf("f1 reported missing although it came")
		}
		for _, f := range out {
			if string(f.Name) == "zip" && (f.Kind != String || string(f.Str) != "2040") {
				t.Errorf("zip, declared a category, came as the number 2040 and became %+v", f)
			}
		}
	}
}

func detail(viol []Violation, feature string) string {
	for _, v := range viol {
		if v.Feature == feature {
			return v.Detail
		}
	}
	return ""
}

func TestACheckerReportsMissingAndOutOfRangeFeatures(t *testing.T) {
	c := NewChecker(testSchema("", ""))
	_, viol, reject := c.Check([]Field{num("f2", 1)})
	if !reject || len(viol) != 1 || viol[0].Kind != ViolationMissing || viol[0].Feature != "f1" {
		t.Fatalf("without f1: %+v %v, want f1 missing and a rejection", viol, reject)
	}
	_, viol, reject = c.Check([]Field{num("f1", 11)})
	if !reject || len(viol) != 1 || viol[0].Kind != ViolationOutOfRange || !strings.Contains(viol[0].Detail, "[0, 10]") {
		t.Fatalf("f1 = 11: %+v %v, want out of range [0, 10]", viol, reject)
	}
	out, viol, reject := c.Check([]Field{num("f1", 3), num("f2", -4), cat("zip", "x")})
	if reject || len(viol) != 0 || len(out) != 3 {
		t.Fatalf("a valid event: %+v %+v %v", out, viol, reject)
	}
}

func TestAValidEventIsCheckedWithoutAllocating(t *testing.T) {
	c := NewChecker(testSchema("", ""))
	fields := []Field{num("f1", 3), num("f2", -4), num("zip", 2040), boolean("vip", false)}
	c.Check(fields)
	if n := testing.AllocsPerRun(100, func() { c.Check(fields) }); n != 0 {
		t.Fatalf("%v allocations per valid event", n)
	}
}

func TestInvalidSchemasAreRefusedNamingTheSetting(t *testing.T) {
	for _, tc := range []struct {
		s    Schema
		want string
	}{
		{Schema{NewFeatures: "drop"}, "new_features"},
		{Schema{OnViolation: "skip"}, "on_violation"},
		{Schema{Features: map[string]FeatureSpec{"a": {}}}, `"a" has no kind`},
		{Schema{Features: map[string]FeatureSpec{"a": {Kind: "text"}}}, `kind "text"`},
		{Schema{Features: map[string]FeatureSpec{"a": {Kind: KindCategory, Min: ptr(1)}}}, "numbers only"},
		{Schema{Features: map[string]FeatureSpec{"a": {Kind: KindNumber, Min: ptr(2), Max: ptr(1)}}}, "above max"},
	} {
		if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
}

// TestMissingNumbersAreFilledAsTheSchemaSays fills a missing number with
// zero or the running mean and adds an indicator, and leaves present
// values alone.
func TestMissingNumbersAreFilledAsTheSchemaSays(t *testing.T) {
	s := &Schema{Features: map[string]FeatureSpec{
		"z": {Kind: KindNumber, Missing: MissingZero, Indicator: true},
		"m": {Kind: KindNumber, Missing: MissingMean},
		"k": {Kind: KindNumber},
	}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c := NewChecker(s)
	c.SetMean(func(name string) (float64, bool) { return 4.5, name == "m" })
	out, viol, reject := c.Check([]Field{num("k", 1)})
	got := map[string]Field{}
	for _, f := range out {
		got[string(f.Name)] = f
	}
	if reject || len(viol) != 0 || got["z"].Num != 0 || got["z"].Kind != Number || got["m"].Num != 4.5 ||
		got["z_missing"].Kind != Bool || got["z_missing"].Num != 1 || len(out) != 4 {
		t.Fatalf("filled %+v (violations %+v)", out, viol)
	}
	out, _, _ = c.Check([]Field{num("k", 1), num("z", 7), num("m", 2)})
	if len(out) != 3 {
		t.Fatalf("present values were filled too: %+v", out)
	}
	bad := &Schema{Features: map[string]FeatureSpec{"c": {Kind: KindCategory, Missing: MissingZero}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "numbers only") {
		t.Fatalf("missing: zero on a category: %v", err)
	}
}

// TestAnInferenceDeclaresEachFeatureByTheKindItCameAsMostOften keeps
// declared features and breaks ties towards category.
func TestAnInferenceDeclaresEachFeatureByTheKindItCameAsMostOften(t *testing.T) {
	in := NewInference(4)
	rows := [][]Field{
		{num("a", 1), cat("b", "x"), num("t", 1), num("d", 1)},
		{num("a", 2), num("b", 3), cat("t", "y"), num("d", 2)},
		{cat("a", "3"), cat("b", "z"), boolean("v", true)},
		{num("a", 4), boolean("v", false)},
	}
	for i, r := range rows {
		if done := in.Observe(r); done != (i == 3) {
			t.Fatalf("row %d: done %v", i, done)
		}
	}
	s := in.Schema(Schema{NewFeatures: PolicyIgnore, Features: map[string]FeatureSpec{"d": {Kind: KindCategory}}})
	want := map[string]string{"a": KindNumber, "b": KindCategory, "t": KindCategory, "v": KindBoolean, "d": KindCategory}
	for name, kind := range want {
		if s.Features[name].Kind != kind || s.Features[name].Required {
			t.Errorf("%s inferred as %+v, want %s, not required", name, s.Features[name], kind)
		}
	}
	if s.Infer != 0 || s.NewFeatures != PolicyIgnore {
		t.Errorf("the frozen schema %+v keeps Infer or loses the base's policy", s)
	}
	data, _ := in.MarshalState()
	back, err := UnmarshalInference(data)
	if err != nil || back.Seen != 4 || back.Kinds["a"] != in.Kinds["a"] {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}
