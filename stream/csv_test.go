package stream

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// readCSV reads every row of input, failing on any error.
func readCSV(t *testing.T, input string, cfg CSVConfig) (*CSVReader, []snapshot) {
	t.Helper()
	r, err := NewCSVReader(strings.NewReader(input), cfg)
	if err != nil {
		t.Fatalf("NewCSVReader: %v", err)
	}
	var rows []snapshot
	var ev Event
	for {
		err := r.Read(&ev)
		if errors.Is(err, io.EOF) {
			return r, rows
		}
		if err != nil {
			t.Fatalf("row %d: %v", r.Row(), err)
		}
		rows = append(rows, snap(&ev))
	}
}

func TestCSVReaderTypesEachCellAsTheDecoderReadsItsEncoding(t *testing.T) {
	for _, tc := range []struct {
		cell string
		want fieldSnapshot
	}{
		{"1.5", num("c", 1.5)}, {"-3", num("c", -3)}, {"1e3", num("c", 1000)}, {"0x1p-2", num("c", 0.25)},
		{"TRUE", boolean("c", true)}, {"false", boolean("c", false)}, {"False", boolean("c", false)},
		{"red", str("c", "red")}, {"NaN", str("c", "NaN")}, {"inf", str("c", "inf")}, {"1e999", str("c", "1e999")},
		{"nope", str("c", "nope")}, {"+", str("c", "+")}, {".", str("c", ".")}, {"n/a", str("c", "n/a")},
		{"truee", str("c", "truee")}, {"-0", num("c", math.Copysign(0, -1))}, {"Köln", str("c", "Köln")},
	} {
		r, err := NewCSVReader(strings.NewReader("c\n\""+tc.cell+"\"\n"), CSVConfig{})
		if err != nil {
			t.Fatal(err)
		}
		ev := Event{ID: []byte("a")}
		if err := r.Read(&ev); err != nil {
			t.Fatalf("cell %q: %v", tc.cell, err)
		}
		if got := snap(&ev).Fields; len(got) != 1 || got[0] != tc.want || math.Signbit(got[0].Num) != math.Signbit(tc.want.Num) {
			t.Errorf("cell %q is read as %+v, want %+v", tc.cell, got, tc.want)
		}
		// What a producer sends of it is what was read: encoding/json,
		// another reader of the JSON, agrees.
		ev.ID = []byte("a")
		data, err := AppendEvent(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Features map[string]any }
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		var read any = tc.want.Str
		switch tc.want.Kind {
		case KindNumber:
			read = tc.want.Num
		case KindBool:
			read = tc.want.Num == 1
		}
		if doc.Features["c"] != read {
			t.Errorf("cell %q: read as %#v, sent as %#v", tc.cell, read, doc.Features["c"])
		}
	}
}

func TestCSVReaderMakesFeaturesOfNamedColumnsOnly(t *testing.T) {
	// pandas' to_csv writes its index as a first column without a name.
	input := ",user,amount,country,skip,label\n" +
		"0,u1,12.5,DE,x,1\n" +
		"1,,3,,y,\n" + // empty cells are left out; an empty label is no label
		"2,u3,,FR,z,false\n"
	r, rows := readCSV(t, input, CSVConfig{Target: "label", Key: "user", Ignore: []string{"skip"}})
	if got := r.Unnamed(); !reflect.DeepEqual(got, []int{0}) {
		t.Errorf("Unnamed() = %v, want [0]", got)
	}
	want := []snapshot{
		{Key: "u1", Fields: []fieldSnapshot{num("amount", 12.5), str("country", "DE")}, Label: 1, HasLabel: true},
		{Key: "", Fields: []fieldSnapshot{num("amount", 3)}}, // an empty key cell is an empty key, not none
		{Key: "u3", Fields: []fieldSnapshot{str("country", "FR")}, Label: 0, HasLabel: true},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows\n%+v\nwant\n%+v", rows, want)
	}
	// Without Target, an unnamed column is still not the label; without
	// Key, events have none.
	_, rows = readCSV(t, ",amount\n0,1\n", CSVConfig{})
	if want := []snapshot{{KeyNil: true, Fields: []fieldSnapshot{num("amount", 1)}}}; !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
}

func TestCSVReaderRowErrorsNameTheLineAndReadingGoesOn(t *testing.T) {
	input := "x,label\n" +
		"1,0\n" + // line 2
		"\"multi\nline\",1\n" + // lines 3-4
		"2,maybe\n" + // line 5
		"3\n" + // line 6
		"K\xf6ln,1\n" + // line 7
		"4,1\n" + // line 8
		"a\"b,1\n" + // line 9
		"5,1\n" // line 10
	r, err := NewCSVReader(strings.NewReader(input), CSVConfig{Target: "label"})
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		row, line int
		reason    string // "" for a valid row
	}
	var got []outcome
	var ev Event
	for {
		err := r.Read(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		var re *CSVRowError
		switch {
		case errors.As(err, &re):
			if re.Line != r.Line() {
				t.Errorf("error line %d, Line() %d", re.Line, r.Line())
			}
			got = append(got, outcome{r.Row(), re.Line, re.Reason})
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, outcome{r.Row(), r.Line(), ""})
		}
	}
	want := []outcome{
		{1, 2, ""},
		{2, 3, ""},
		{3, 5, `label "maybe" in column "label" is not a number or boolean`},
		{4, 6, "wrong number of fields: 1 fields, but the header has 2"},
		{5, 7, `column "x" is not valid UTF-8: "K\xf6ln"`},
		{6, 8, ""},
		{7, 9, `bare " in non-quoted-field`},
		{8, 10, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes\n%+v\nwant\n%+v", got, want)
	}
}

func TestCSVReaderRefusesAHeaderThatCannotNameTheColumns(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		cfg         CSVConfig
		check       func(error) bool
	}{
		{"empty input", "", CSVConfig{}, func(err error) bool { return errors.Is(err, ErrCSVEmpty) }},
		{"a repeated name", "x,x,y\n", CSVConfig{}, headerError(`column "x" appears twice`)},
		{"a name that is not UTF-8", "x,\xff\n", CSVConfig{}, headerError("column 2 is not valid UTF-8")},
		{"an unreadable header", "\"x\n", CSVConfig{}, headerError("reading the header")},
		{"no target column", "x,y\n", CSVConfig{Target: "label"}, columnError("Target", "label")},
		{"no key column", "x,y\n", CSVConfig{Key: "user"}, columnError("Key", "user")},
		{"no ignored column", "x,y\n", CSVConfig{Ignore: []string{"z"}}, columnError("Ignore", "z")},
		{"an empty ignored name without an unnamed column", "x,y\n", CSVConfig{Ignore: []string{""}}, columnError("Ignore", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCSVReader(strings.NewReader(tc.input), tc.cfg)
			if err == nil || !tc.check(err) || !strings.HasPrefix(err.Error(), "stream: ") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// Unnamed columns are left out, so two of them are no repeat.
	if _, err := NewCSVReader(strings.NewReader(",,x\n"), CSVConfig{Ignore: []string{""}}); err != nil {
		t.Fatalf("two unnamed columns: %v", err)
	}
}

func headerError(reason string) func(error) bool {
	return func(err error) bool {
		var he *CSVHeaderError
		return errors.As(err, &he) && strings.Contains(he.Reason, reason)
	}
}

func columnError(role, column string) func(error) bool {
	return func(err error) bool {
		var ce *CSVColumnError
		return errors.As(err, &ce) && ce.Role == role && ce.Column == column && reflect.DeepEqual(ce.Header, []string{"x", "y"}) &&
			strings.Contains(err.Error(), "x, y")
	}
}

func BenchmarkCSVReader(b *testing.B) {
	var input strings.Builder
	input.WriteString("date,day,period,nswprice,nswdemand,vicprice,vicdemand,transfer,region,up\n")
	for i := range 10000 {
		input.WriteString("0.000000,2,0.000000,0.056443,0.439155,0.003467,0.422915,0.414912,")
		input.WriteString([]string{"NSW", "VIC"}[i%2])
		input.WriteString(",1\n")
	}
	data := input.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var ev Event
	for b.Loop() {
		r, err := NewCSVReader(strings.NewReader(data), CSVConfig{Target: "up"})
		if err != nil {
			b.Fatal(err)
		}
		for r.Read(&ev) == nil {
		}
	}
}

// TestCategoricalColumnsStayCategories reads digits in a column declared
// categorical as the category named by the text, not as a number; a
// categorical column the header lacks is an error naming it.
func TestCategoricalColumnsStayCategories(t *testing.T) {
	r, err := NewCSVReader(strings.NewReader("zip,amount,y\n02040,3.5,1\n"), CSVConfig{Target: "y", Categorical: []string{"zip"}})
	if err != nil {
		t.Fatal(err)
	}
	var ev Event
	if err := r.Read(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.Fields[0].Kind != KindString || string(ev.Fields[0].Str) != "02040" || ev.Fields[1].Kind != KindNumber {
		t.Fatalf("fields %+v: want zip the category 02040 and amount a number", ev.Fields)
	}
	_, err = NewCSVReader(strings.NewReader("zip,y\n1,1\n"), CSVConfig{Categorical: []string{"postcode"}})
	var col *CSVColumnError
	if !errors.As(err, &col) || col.Role != "Categorical" || col.Column != "postcode" {
		t.Fatalf("a missing categorical column: %v", err)
	}
}
