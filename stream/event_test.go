package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// snapshot is an owned, comparable copy of an Event, so results survive the
// next Decode and compare with reflect.DeepEqual.
type snapshot struct {
	ID       string
	Key      string
	KeyNil   bool
	Time     time.Time
	HasTime  bool
	Fields   []fieldSnapshot
	Label    float64
	HasLabel bool
}

type fieldSnapshot struct {
	Name string
	Kind FieldKind
	Num  float64
	Str  string
}

func snap(ev *Event) snapshot {
	s := snapshot{
		ID: string(ev.ID), Key: string(ev.Key), KeyNil: ev.Key == nil,
		Time: ev.Time, HasTime: ev.HasTime, Label: ev.Label, HasLabel: ev.HasLabel,
	}
	for _, f := range ev.Fields {
		s.Fields = append(s.Fields, fieldSnapshot{string(f.Name), f.Kind, f.Num, string(f.Str)})
	}
	return s
}

func num(name string, v float64) fieldSnapshot {
	return fieldSnapshot{Name: name, Kind: KindNumber, Num: v}
}

func str(name, v string) fieldSnapshot {
	return fieldSnapshot{Name: name, Kind: KindString, Str: v}
}

func boolean(name string, v bool) fieldSnapshot {
	f := fieldSnapshot{Name: name, Kind: KindBool}
	if v {
		f.Num = 1
	}
	return f
}

// event builds the expected snapshot of an event with only id and features.
func event(id string, fields ...fieldSnapshot) snapshot {
	return snapshot{ID: id, KeyNil: true, Fields: fields}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// escapedEvent puts several escaped strings into the scratch buffer.
const escapedEvent = `{"id":"\u0041\u0042","key":"k\n","ts":"2026-11-20T10:00:00\u005a","features":{` +
	`"n\u00e91":"v\u00e91","n\u00e92":"v\u00e92","n\u00e93":"v\u00e93","n\u00e94":"v\u00e94"}}`

// skippedEvent has unknown keys with nested values that must be skipped.
const skippedEvent = `{"meta":{"a":[1,2,{"b":null,"c":[true,false]}],"d":"x\"}y\u0041"},"id":"a","tags":[],` +
	`"o":{},"n":-1.5e-3,"huge":1e999,"s":"[","features":{"x":1},"after":[[[]]]}`

const typicalEvent = `{"id": "e-1842", "key": "user-42", "ts": "2026-11-20T10:00:00Z",
 "features": {"amount": 12.5, "country": "DE", "is_new": true},
 "label": 1}`

var validCases = []struct {
	name string
	in   string
	want snapshot
}{
	{
		name: "the contract example decodes every field",
		in:   typicalEvent,
		want: snapshot{
			ID: "e-1842", Key: "user-42", Time: utc("2026-11-20T10:00:00Z"), HasTime: true,
			Fields: []fieldSnapshot{num("amount", 12.5), str("country", "DE"), boolean("is_new", true)},
			Label:  1, HasLabel: true,
		},
	},
	{
		name: "an event with only id and empty features is valid",
		in:   `{"id":"a","features":{}}`,
		want: event("a"),
	},
	{
		name: "ts with fraction and offset is converted to UTC",
		in:   `{"id":"a","ts":"2026-11-20T12:00:00.123456789+02:00","features":{}}`,
		want: snapshot{ID: "a", KeyNil: true, Time: utc("2026-11-20T10:00:00.123456789Z"), HasTime: true},
	},
	{
		name: "ts with a half-hour offset is converted to UTC",
		in:   `{"id":"a","ts":"2026-11-20T15:30:00+05:30","features":{}}`,
		want: snapshot{ID: "a", KeyNil: true, Time: utc("2026-11-20T10:00:00Z"), HasTime: true},
	},
	{
		name: "ts as integer epoch millis is a time",
		in:   `{"id":"a","ts":1795168800000,"features":{}}`,
		want: snapshot{ID: "a", KeyNil: true, Time: utc("2026-11-20T10:00:00Z"), HasTime: true},
	},
	{
		name: "ts as fractional epoch millis keeps nanoseconds",
		in:   `{"id":"a","ts":1795168800000.25,"features":{}}`,
		want: snapshot{ID: "a", KeyNil: true, Time: utc("2026-11-20T10:00:00.00025Z"), HasTime: true},
	},
	{
		name: "ts as negative epoch millis is before 1970",
		in:   `{"id":"a","ts":-1500,"features":{}}`,
		want: snapshot{ID: "a", KeyNil: true, Time: utc("1969-12-31T23:59:58.5Z"), HasTime: true},
	},
	{
		name: "ts in exponent notation is epoch millis",
		in:   `{"id":"a","ts":1e3,"features":{}}`,
		want: snapshot{ID: "a", KeyNil: true, Time: utc("1970-01-01T00:00:01Z"), HasTime: true},
	},
	{
		name: "null ts and null key are absent",
		in:   `{"id":"a","ts":null,"key":null,"features":{}}`,
		want: event("a"),
	},
	{
		name: "an empty key is present but empty",
		in:   `{"id":"a","key":"","features":{}}`,
		want: snapshot{ID: "a", Key: "", KeyNil: false},
	},
	{
		name: "label true is 1",
		in:   `{"id":"a","features":{},"label":true}`,
		want: snapshot{ID: "a", KeyNil: true, Label: 1, HasLabel: true},
	},
	{
		name: "label false is 0 and present",
		in:   `{"id":"a","features":{},"label":false}`,
		want: snapshot{ID: "a", KeyNil: true, Label: 0, HasLabel: true},
	},
	{
		name: "a fractional label is kept",
		in:   `{"id":"a","features":{},"label":0.25}`,
		want: snapshot{ID: "a", KeyNil: true, Label: 0.25, HasLabel: true},
	},
	{
		name: "null label is absent",
		in:   `{"id":"a","features":{},"label":null}`,
		want: event("a"),
	},
	{
		name: "every number form of the JSON grammar parses",
		in: `{"id":"a","features":{"zero":0,"negzero":-0,"int":42,"neg":-12.75,` +
			`"exp":1e3,"EXP":1E+2,"negexp":2.5e-3,"big":1.7976931348623157e308,"tiny":1e-400}}`,
		want: event("a", num("zero", 0), num("negzero", math.Copysign(0, -1)), num("int", 42),
			num("neg", -12.75), num("exp", 1000), num("EXP", 100), num("negexp", 0.0025),
			num("big", math.MaxFloat64), num("tiny", 0)),
	},
	{
		name: "booleans become 1 and 0",
		in:   `{"id":"a","features":{"t":true,"f":false}}`,
		want: event("a", boolean("t", true), boolean("f", false)),
	},
	{
		name: "all simple escapes are unescaped",
		in:   `{"id":"a","features":{"s":"q\"b\\s\/b\bf\fn\nr\rt\t"}}`,
		want: event("a", str("s", "q\"b\\s/b\bf\fn\nr\rt\t")),
	},
	{
		name: "unicode escapes including surrogate pairs are unescaped",
		in:   `{"id":"\u00e9t\u00C9","features":{"emoji":"\ud83d\ude00!","cjk":"\u4e2d"}}`,
		want: event("étÉ", str("emoji", "😀!"), str("cjk", "中")),
	},
	{
		name: "lone surrogates become U+FFFD",
		in:   `{"id":"a","features":{"hi":"x\ud800y","lo":"\udc00","hiThenA":"\ud800\u0041","hiHi":"\ud800\ud83d\ude00"}}`,
		want: event("a", str("hi", "x\uFFFDy"), str("lo", "\uFFFD"), str("hiThenA", "\uFFFDA"), str("hiHi", "\uFFFD😀")),
	},
	{
		name: "raw UTF-8 passes through",
		in:   `{"id":"ñandú","features":{"città":"東京"}}`,
		want: event("ñandú", str("città", "東京")),
	},
	{
		name: "escaped key names match known keys and name features",
		in:   `{"\u0069d":"a","feat\u0075res":{"\u0061mount":1,"plain":2}}`,
		want: event("a", num("amount", 1), num("plain", 2)),
	},
	{
		name: "many escaped strings in one event all stay intact",
		in:   escapedEvent,
		want: snapshot{ID: "AB", Key: "k\n", Time: utc("2026-11-20T10:00:00Z"), HasTime: true,
			Fields: []fieldSnapshot{str("né1", "vé1"), str("né2", "vé2"), str("né3", "vé3"), str("né4", "vé4")}},
	},
	{
		name: "unknown keys with nested values are skipped",
		in:   skippedEvent,
		want: event("a", num("x", 1)),
	},
	{
		name: "whitespace is allowed between every token",
		in:   " \t\r\n{ \"id\" : \"a\" , \"features\" : { \"x\" : 1 , \"y\" : \"z\" } , \"label\" : 0 } \n",
		want: snapshot{ID: "a", KeyNil: true, Fields: []fieldSnapshot{num("x", 1), str("y", "z")}, HasLabel: true},
	},
	{
		name: "unknown keys may repeat",
		in:   `{"id":"a","x":1,"x":2,"features":{}}`,
		want: event("a"),
	},
	{
		name: "feature names may differ only in case",
		in:   `{"id":"a","features":{"a":1,"A":2}}`,
		want: event("a", num("a", 1), num("A", 2)),
	},
}

func TestDecodeAcceptsValidEvents(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var ev Event
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			if err := d.Decode([]byte(tc.in), &ev); err != nil {
				t.Fatalf("Decode(%s) = %v, want nil", tc.in, err)
			}
			if got := snap(&ev); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decode(%s)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
			if !json.Valid([]byte(tc.in)) {
				t.Errorf("test input is not valid JSON: %s", tc.in)
			}
		})
	}
}

func TestDecodeAcceptsWholeHourOffsetsAndKeepsTheInstant(t *testing.T) {
	var ev Event
	in := `{"id":"a","ts":"2026-11-20T03:00:00-07:00","features":{}}`
	if err := NewDecoder(DecoderConfig{}).Decode([]byte(in), &ev); err != nil {
		t.Fatal(err)
	}
	if want := utc("2026-11-20T10:00:00Z"); !ev.Time.Equal(want) || ev.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", ev.Time, want)
	}
}

func TestZeroDecoderUsesDefaults(t *testing.T) {
	var d Decoder
	var ev Event
	if err := d.Decode([]byte(typicalEvent), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Fields) != 3 {
		t.Errorf("len(Fields) = %d, want 3", len(ev.Fields))
	}
}

// manyFields returns an event with n numeric features f0..f(n-1).
func manyFields(n int) string {
	var b strings.Builder
	b.WriteString(`{"id":"a","features":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":%d.5`, i, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

// nested returns an event with an unknown key holding depth nested arrays.
func nested(depth int) string {
	return `{"id":"a","features":{},"deep":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

var invalidCases = []struct {
	name   string
	cfg    DecoderConfig
	in     string
	reason Reason
	detail []string // substrings Detail must contain
}{
	// ReasonInvalidJSON
	{name: "empty input is invalid JSON", in: ``,
		reason: ReasonInvalidJSON, detail: []string{"at byte 0", "unexpected end of input"}},
	{name: "whitespace only is invalid JSON", in: "  \n",
		reason: ReasonInvalidJSON, detail: []string{"at byte 3", "end of input"}},
	{name: "a top-level array is invalid JSON", in: `[{"id":"a","features":{}}]`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 0", "expected '{'"}},
	{name: "a top-level string is invalid JSON", in: `"id"`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 0"}},
	{name: "truncated JSON inside features is invalid", in: `{"id":"a","features":{"x":1`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 27", `feature "x"`, "end of input"}},
	{name: "truncated JSON inside a string is invalid", in: `{"id":"a","features":{"country":"D`,
		reason: ReasonInvalidJSON, detail: []string{`feature "country"`, "end of input in string"}},
	{name: "truncated JSON after a key is invalid", in: `{"id":"a","features"`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 20: unexpected end of input"}},
	{name: "trailing garbage after the event is invalid", in: `{"id":"a","features":{}} x`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 25", "unexpected data after event"}},
	{name: "a second object after the event is invalid", in: `{"id":"a","features":{}}{}`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 24"}},
	{name: "a missing colon is invalid", in: `{"id" "a","features":{}}`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 6", "expected ':'"}},
	{name: "a trailing comma in features is invalid", in: `{"id":"a","features":{"x":1,}}`,
		reason: ReasonInvalidJSON, detail: []string{"features", "expected string key"}},
	{name: "a trailing comma in the event is invalid", in: `{"id":"a","features":{},}`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 24", "expected string key"}},
	{name: "single-quoted strings are invalid", in: `{'id':'a','features':{}}`,
		reason: ReasonInvalidJSON, detail: []string{"at byte 1"}},
	{name: "a leading zero in a feature is invalid", in: `{"id":"a","features":{"amount":01}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`, "leading zero"}},
	{name: "a negative leading zero in the label is invalid", in: `{"id":"a","features":{},"label":-00.5}`,
		reason: ReasonInvalidJSON, detail: []string{"label", "leading zero"}},
	{name: "a plus sign on a feature is invalid", in: `{"id":"a","features":{"amount":+1}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`, "'+'"}},
	{name: "a hex number is invalid", in: `{"id":"a","features":{"amount":0x1F}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`}},
	{name: "underscores in numbers are invalid", in: `{"id":"a","features":{"amount":1_000}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`}},
	{name: "a trailing dot is invalid", in: `{"id":"a","features":{"amount":1.}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`, "expected digit"}},
	{name: "a leading dot is invalid", in: `{"id":"a","features":{"amount":.5}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`}},
	{name: "an empty exponent is invalid", in: `{"id":"a","features":{"amount":1e}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`, "expected digit"}},
	{name: "a bare minus is invalid", in: `{"id":"a","features":{"amount":-}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`, "expected digit"}},
	{name: "lower-case inf is invalid JSON", in: `{"id":"a","features":{"amount":inf}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`}},
	{name: "lower-case nan is invalid JSON", in: `{"id":"a","features":{"amount":nan}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "amount"`, "expected null"}},
	{name: "a misspelt literal is invalid", in: `{"id":"a","features":{"is_new":tru}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "is_new"`, "expected true"}},
	{name: "a raw control character in a string is invalid", in: "{\"id\":\"a\tb\",\"features\":{}}",
		reason: ReasonInvalidJSON, detail: []string{"id", "control character"}},
	{name: "an unknown escape is invalid", in: `{"id":"a\x","features":{}}`,
		reason: ReasonInvalidJSON, detail: []string{"id", "invalid escape 'x'"}},
	{name: "a short unicode escape is invalid", in: `{"id":"a","features":{"s":"\u12G4"}}`,
		reason: ReasonInvalidJSON, detail: []string{`feature "s"`, `invalid \u escape`}},
	{name: "too deep nesting in an unknown key is invalid", in: nested(32),
		reason: ReasonInvalidJSON, detail: []string{`field "deep"`, "nesting deeper than 32"}},
	{name: "nesting deeper than a custom MaxDepth is invalid", cfg: DecoderConfig{MaxDepth: 3},
		in:     `{"id":"a","features":{},"meta":{"a":{"b":[1]}}}`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "nesting deeper than 3"}},
	{name: "a mismatched bracket in an unknown key is invalid", in: `{"id":"a","features":{},"meta":[1}}`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "expected ',' or ']'"}},
	{name: "a leading comma in an unknown array is invalid", in: `{"id":"a","features":{},"meta":[,1]}`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "unexpected ','"}},
	{name: "a trailing comma in an unknown object is invalid", in: `{"id":"a","features":{},"meta":{"a":1,}}`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "expected string key"}},
	{name: "a bad number in an unknown key is invalid", in: `{"id":"a","features":{},"meta":[01]}`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "leading zero"}},
	{name: "a bad escape in an unknown key is invalid", in: `{"id":"a","features":{},"meta":{"\q":1}}`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "invalid escape"}},
	{name: "an unclosed unknown value is invalid", in: `{"id":"a","features":{},"meta":{"a":[1,2`,
		reason: ReasonInvalidJSON, detail: []string{`field "meta"`, "end of input"}},

	// ReasonMissingField
	{name: "a missing id is a missing field", in: `{"features":{"x":1}}`,
		reason: ReasonMissingField, detail: []string{`missing required field "id"`}},
	{name: "a missing features is a missing field", in: `{"id":"a","label":1}`,
		reason: ReasonMissingField, detail: []string{`missing required field "features"`}},
	{name: "an empty id is a missing field", in: `{"id":"","features":{}}`,
		reason: ReasonMissingField, detail: []string{`"id" is empty`}},
	{name: "an empty object is a missing field", in: `{}`,
		reason: ReasonMissingField, detail: []string{`"id"`}},

	// ReasonWrongType
	{name: "a numeric id is the wrong type", in: `{"id":42,"features":{}}`,
		reason: ReasonWrongType, detail: []string{"id must be a string, got number"}},
	{name: "a null id is the wrong type", in: `{"id":null,"features":{}}`,
		reason: ReasonWrongType, detail: []string{"id must be a string, got null"}},
	{name: "a numeric key is the wrong type", in: `{"id":"a","key":7,"features":{}}`,
		reason: ReasonWrongType, detail: []string{"key must be a string, got number"}},
	{name: "an unparseable ts string is the wrong type", in: `{"id":"a","ts":"yesterday","features":{}}`,
		reason: ReasonWrongType, detail: []string{`ts "yesterday"`, "RFC 3339"}},
	{name: "a ts without a zone is the wrong type", in: `{"id":"a","ts":"2026-11-20T10:00:00","features":{}}`,
		reason: ReasonWrongType, detail: []string{"ts", "RFC 3339"}},
	{name: "a boolean ts is the wrong type", in: `{"id":"a","ts":true,"features":{}}`,
		reason: ReasonWrongType, detail: []string{"ts must be", "got boolean"}},
	{name: "an out-of-range epoch ts is the wrong type", in: `{"id":"a","ts":1e300,"features":{}}`,
		reason: ReasonWrongType, detail: []string{"ts 1e+300", "out of range"}},
	{name: "a features array is the wrong type", in: `{"id":"a","features":[1,2]}`,
		reason: ReasonWrongType, detail: []string{"features must be an object, got array"}},
	{name: "a null features is the wrong type", in: `{"id":"a","features":null}`,
		reason: ReasonWrongType, detail: []string{"features must be an object, got null"}},
	{name: "a nested feature object is the wrong type", in: `{"id":"a","features":{"geo":{"lat":1}}}`,
		reason: ReasonWrongType, detail: []string{`feature "geo" has unsupported type object`}},
	{name: "a feature array is the wrong type", in: `{"id":"a","features":{"tags":[1]}}`,
		reason: ReasonWrongType, detail: []string{`feature "tags" has unsupported type array`}},
	{name: "a null feature is the wrong type", in: `{"id":"a","features":{"amount":null}}`,
		reason: ReasonWrongType, detail: []string{`feature "amount" has unsupported type null`}},
	{name: "a string label is the wrong type", in: `{"id":"a","features":{},"label":"1"}`,
		reason: ReasonWrongType, detail: []string{"label must be a number or boolean, got string"}},
	{name: "an array label is the wrong type", in: `{"id":"a","features":{},"label":[1]}`,
		reason: ReasonWrongType, detail: []string{"label", "got array"}},
	{name: "an object label is the wrong type", in: `{"id":"a","features":{},"label":{}}`,
		reason: ReasonWrongType, detail: []string{"label", "got object"}},

	// ReasonNonFinite
	{name: "NaN in a feature is non-finite", in: `{"id":"a","features":{"amount":NaN}}`,
		reason: ReasonNonFinite, detail: []string{`feature "amount" is NaN`}},
	{name: "Infinity in a feature is non-finite", in: `{"id":"a","features":{"amount":Infinity}}`,
		reason: ReasonNonFinite, detail: []string{`feature "amount" is Infinity`}},
	{name: "-Infinity in a feature is non-finite", in: `{"id":"a","features":{"amount":-Infinity}}`,
		reason: ReasonNonFinite, detail: []string{`feature "amount" is -Infinity`}},
	{name: "NaN in the label is non-finite", in: `{"id":"a","features":{},"label":NaN}`,
		reason: ReasonNonFinite, detail: []string{"label is NaN"}},
	{name: "Infinity in the label is non-finite", in: `{"id":"a","features":{},"label":Infinity}`,
		reason: ReasonNonFinite, detail: []string{"label is Infinity"}},
	{name: "-Infinity in the label is non-finite", in: `{"id":"a","features":{},"label":-Infinity}`,
		reason: ReasonNonFinite, detail: []string{"label is -Infinity"}},
	{name: "1e999 in a feature is non-finite", in: `{"id":"a","features":{"amount":1e999}}`,
		reason: ReasonNonFinite, detail: []string{`feature "amount" overflows float64`}},
	{name: "-1e999 in the label is non-finite", in: `{"id":"a","features":{},"label":-1e999}`,
		reason: ReasonNonFinite, detail: []string{"label overflows float64"}},
	{name: "NaN as ts is non-finite", in: `{"id":"a","ts":NaN,"features":{}}`,
		reason: ReasonNonFinite, detail: []string{"ts is NaN"}},
	{name: "NaN in an unknown key is non-finite", in: `{"id":"a","features":{},"score":NaN}`,
		reason: ReasonNonFinite, detail: []string{`field "score" is NaN`}},
	{name: "Infinity nested in an unknown key is non-finite", in: `{"id":"a","features":{},"meta":[1,-Infinity]}`,
		reason: ReasonNonFinite, detail: []string{`field "meta" contains -Infinity`}},

	// ReasonDuplicateField
	{name: "a duplicate feature is a duplicate field", in: `{"id":"a","features":{"amount":1,"x":2,"amount":3}}`,
		reason: ReasonDuplicateField, detail: []string{`duplicate feature "amount"`}},
	{name: "a duplicate feature spelt with an escape is a duplicate field",
		in:     `{"id":"a","features":{"amount":1,"\u0061mount":3}}`,
		reason: ReasonDuplicateField, detail: []string{`duplicate feature "amount"`}},
	{name: "a duplicate among many features is a duplicate field",
		in:     strings.Replace(manyFields(200), `"f199"`, `"f3"`, 1),
		reason: ReasonDuplicateField, detail: []string{`duplicate feature "f3"`}},
	{name: "a duplicate id is a duplicate field", in: `{"id":"a","id":"b","features":{}}`,
		reason: ReasonDuplicateField, detail: []string{`duplicate field "id"`}},
	{name: "a duplicate features object is a duplicate field", in: `{"id":"a","features":{"x":1},"features":{"y":1}}`,
		reason: ReasonDuplicateField, detail: []string{`duplicate field "features"`}},
	{name: "a duplicate label is a duplicate field", in: `{"id":"a","features":{},"label":1,"label":null}`,
		reason: ReasonDuplicateField, detail: []string{`duplicate field "label"`}},

	// ReasonInvalidUTF8
	{name: "an id with invalid UTF-8 is rejected", in: "{\"id\":\"e-\xff\",\"features\":{}}",
		reason: ReasonInvalidUTF8, detail: []string{`id "e-\xff" is not valid UTF-8`}},
	{name: "a key with a truncated UTF-8 sequence is rejected", in: "{\"id\":\"a\",\"key\":\"user-\xc3\",\"features\":{}}",
		reason: ReasonInvalidUTF8, detail: []string{`key "user-\xc3" is not valid UTF-8`}},
	{name: "a feature name with invalid UTF-8 is rejected", in: "{\"id\":\"a\",\"features\":{\"amo\xffunt\":1}}",
		reason: ReasonInvalidUTF8, detail: []string{`feature name "amo\xffunt" is not valid UTF-8`}},
	{name: "a categorical value with invalid UTF-8 is rejected", in: "{\"id\":\"a\",\"features\":{\"country\":\"D\xe9\"}}",
		reason: ReasonInvalidUTF8, detail: []string{`feature "country" value "D\xe9" is not valid UTF-8`}},
	{name: "invalid UTF-8 next to an escape is rejected", in: "{\"id\":\"a\",\"features\":{\"country\":\"\\u00e9\xff\"}}",
		reason: ReasonInvalidUTF8, detail: []string{`feature "country" value`, "not valid UTF-8"}},
	{name: "an encoded surrogate half is rejected", in: "{\"id\":\"a\xed\xa0\x80\",\"features\":{}}",
		reason: ReasonInvalidUTF8, detail: []string{"id", "not valid UTF-8"}},
	{name: "an overlong encoding is rejected", in: "{\"id\":\"a\",\"features\":{\"c\":\"\xc0\xaf\"}}",
		reason: ReasonInvalidUTF8, detail: []string{`feature "c" value`}},

	// ReasonTooLarge
	{name: "more features than the default limit is too large", in: manyFields(1025),
		reason: ReasonTooLarge, detail: []string{"features has more than 1024 fields"}},
	{name: "more features than a custom limit is too large", cfg: DecoderConfig{MaxFields: 2},
		in:     `{"id":"a","features":{"a":1,"b":2,"c":3}}`,
		reason: ReasonTooLarge, detail: []string{"features has more than 2 fields"}},
	{name: "a message over a custom byte limit is too large", cfg: DecoderConfig{MaxBytes: 16},
		in:     `{"id":"a","features":{}}`,
		reason: ReasonTooLarge, detail: []string{"message is 24 bytes", "limit of 16"}},
	{name: "a message over the default byte limit is too large even if malformed",
		in:     strings.Repeat("x", 1<<20+1),
		reason: ReasonTooLarge, detail: []string{"message is 1048577 bytes", "limit of 1048576"}},
}

func TestDecodeRejectsInvalidEvents(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			var ev Event
			err := NewDecoder(tc.cfg).Decode([]byte(tc.in), &ev)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode = %v, want *DecodeError", err)
			}
			if de.Reason != tc.reason {
				t.Errorf("Reason = %q, want %q (detail %q)", de.Reason, tc.reason, de.Detail)
			}
			for _, want := range tc.detail {
				if !strings.Contains(de.Detail, want) {
					t.Errorf("Detail = %q, want it to mention %q", de.Detail, want)
				}
			}
			if got := de.Error(); got != "stream: "+de.Detail {
				t.Errorf("Error() = %q, want %q", got, "stream: "+de.Detail)
			}
		})
	}
}

func TestDecodeAcceptsNestingAtTheDepthLimit(t *testing.T) {
	// The event object is depth 1, so 31 arrays reach exactly depth 32.
	var ev Event
	if err := NewDecoder(DecoderConfig{}).Decode([]byte(nested(31)), &ev); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeAcceptsExactlyMaxFieldsAndMaxBytes(t *testing.T) {
	in := manyFields(1024)
	var ev Event
	d := NewDecoder(DecoderConfig{MaxBytes: len(in)})
	if err := d.Decode([]byte(in), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Fields) != 1024 || ev.Fields[1023].Num != 1023.5 {
		t.Errorf("got %d fields, last %+v", len(ev.Fields), ev.Fields[len(ev.Fields)-1])
	}
}

func TestDecodeErrorDetailDoesNotAliasTheInput(t *testing.T) {
	in := []byte(`{"id":"a","features":{"amount":NaN}}`)
	var ev Event
	err := NewDecoder(DecoderConfig{}).Decode(in, &ev)
	before := err.Error()
	for i := range in {
		in[i] = 'X'
	}
	if after := err.Error(); after != before {
		t.Errorf("error changed with the input: %q became %q", before, after)
	}
}

func TestDecodeErrorTruncatesLongNames(t *testing.T) {
	name := strings.Repeat("n", 10000)
	in := `{"id":"a","features":{"` + name + `":NaN}}`
	var ev Event
	err := NewDecoder(DecoderConfig{}).Decode([]byte(in), &ev)
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error = %.300v (len %d), want a short detail", err, len(fmt.Sprint(err)))
	}
}

func TestReusedEventKeepsNothingFromThePreviousEvent(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var ev Event
	first := `{"id":"first","key":"k","ts":"2026-11-20T10:00:00Z","label":1,` +
		`"features":{"a":1,"b":"\u00e9","c":true,"d":4}}`
	if err := d.Decode([]byte(first), &ev); err != nil {
		t.Fatal(err)
	}
	second := `{"id":"second","features":{"z":"s"}}`
	if err := d.Decode([]byte(second), &ev); err != nil {
		t.Fatal(err)
	}
	want := event("second", str("z", "s"))
	if got := snap(&ev); !reflect.DeepEqual(got, want) {
		t.Errorf("after reuse\n got %+v\nwant %+v", got, want)
	}
}

func TestReusedEventRecoversAfterAnError(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var ev Event
	if err := d.Decode([]byte(`{"id":"x","key":"k","features":{"a":1,"b":NaN}}`), &ev); err == nil {
		t.Fatal("want an error")
	}
	if err := d.Decode([]byte(`{"id":"y","features":{"b":2}}`), &ev); err != nil {
		t.Fatal(err)
	}
	if got, want := snap(&ev), event("y", num("b", 2)); !reflect.DeepEqual(got, want) {
		t.Errorf("after error\n got %+v\nwant %+v", got, want)
	}
}

func TestUnescapedStringsAliasTheInput(t *testing.T) {
	in := []byte(`{"id":"abc","features":{"s":"v"}}`)
	var ev Event
	if err := NewDecoder(DecoderConfig{}).Decode(in, &ev); err != nil {
		t.Fatal(err)
	}
	in[7] = 'Z' // the 'a' of "abc"
	if string(ev.ID) != "Zbc" {
		t.Errorf("ID = %q, want it to alias the input", ev.ID)
	}
	if cap(ev.ID) != len(ev.ID) {
		t.Errorf("cap(ID) = %d, want %d so appends cannot clobber the input", cap(ev.ID), len(ev.ID))
	}
}

// typicalBenchEvent is an 8-feature event with the mix producers send.
const typicalBenchEvent = `{"id":"e-1842","key":"user-42","ts":"2026-11-20T10:00:00Z",` +
	`"features":{"amount":12.5,"country":"DE","is_new":true,"age_days":412,` +
	`"basket":3,"discount":0.15,"hour":10,"score":-0.734},"label":1}`

func TestDecodeDoesNotAllocate(t *testing.T) {
	for _, in := range []string{typicalBenchEvent, manyFields(80), skippedEvent} {
		d := NewDecoder(DecoderConfig{})
		var ev Event
		data := []byte(in)
		allocs := testing.AllocsPerRun(100, func() {
			if err := d.Decode(data, &ev); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Decode(%.40s...) allocates %v times per run, want 0", in, allocs)
		}
	}
}

func TestEscapedStringsDoNotAllocateOnceWarm(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var ev Event
	data := []byte(escapedEvent)
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.Decode(data, &ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"typical-8-features", typicalBenchEvent},
		{"80-numeric-features", manyFields(80)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDecoder(DecoderConfig{})
			var ev Event
			data := []byte(bc.in)
			// Grow the Decoder's and Event's buffers first so the figures
			// show the steady state, not one-off growth spread over b.N.
			if err := d.Decode(data, &ev); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := d.Decode(data, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range validCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range invalidCases {
		if len(tc.in) <= 4096 {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(typicalBenchEvent))
	f.Add([]byte(nested(31)))
	// A small-limit decoder reaches the limit paths with short inputs.
	small := DecoderConfig{MaxFields: 4, MaxDepth: 4, MaxBytes: 512}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, cfg := range []DecoderConfig{{}, small} {
			checkDecode(t, NewDecoder(cfg), data)
		}
	})
}

// checkDecode asserts the fuzz invariants for one decoder configuration.
func checkDecode(t *testing.T, d *Decoder, data []byte) {
	var ev Event
	err1 := d.Decode(data, &ev)
	got1 := snap(&ev)
	err2 := d.Decode(data, &ev)
	got2 := snap(&ev)
	if fmt.Sprint(err1) != fmt.Sprint(err2) {
		t.Fatalf("decoding twice gave different errors: %v vs %v", err1, err2)
	}
	if err1 != nil {
		var de *DecodeError
		if !errors.As(err1, &de) || !knownReason(de.Reason) {
			t.Fatalf("error %#v is not a *DecodeError with a known reason", err1)
		}
		return
	}
	if !reflect.DeepEqual(got1, got2) {
		t.Fatalf("decoding twice gave different events:\n%+v\n%+v", got1, got2)
	}
	if !json.Valid(data) {
		t.Fatalf("accepted invalid JSON %q", data)
	}
	if len(ev.ID) == 0 {
		t.Fatalf("accepted an empty id in %q", data)
	}
	if !utf8.Valid(ev.ID) || !utf8.Valid(ev.Key) {
		t.Fatalf("accepted invalid UTF-8 in the id or key of %q", data)
	}
	if math.IsNaN(ev.Label) || math.IsInf(ev.Label, 0) {
		t.Fatalf("non-finite label %v in %q", ev.Label, data)
	}
	for _, fl := range ev.Fields {
		if fl.Kind == KindNumber && (math.IsNaN(fl.Num) || math.IsInf(fl.Num, 0)) {
			t.Fatalf("non-finite feature %q = %v in %q", fl.Name, fl.Num, data)
		}
		if !utf8.Valid(fl.Name) || !utf8.Valid(fl.Str) {
			t.Fatalf("accepted invalid UTF-8 in feature %q = %q in %q", fl.Name, fl.Str, data)
		}
		if fl.Kind < KindNumber || fl.Kind > KindBool {
			t.Fatalf("feature %q has kind %v in %q", fl.Name, fl.Kind, data)
		}
	}
}

func knownReason(r Reason) bool {
	switch r {
	case ReasonInvalidJSON, ReasonMissingField, ReasonWrongType,
		ReasonNonFinite, ReasonDuplicateField, ReasonTooLarge, ReasonInvalidUTF8:
		return true
	}
	return false
}

func TestFieldKindNamesAreReadable(t *testing.T) {
	for k, want := range map[FieldKind]string{
		KindNumber: "number", KindString: "string", KindBool: "bool", 0: "FieldKind(0)",
	} {
		if got := k.String(); got != want {
			t.Errorf("FieldKind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}
