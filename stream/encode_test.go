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

// exact is an owned copy of an Event that compares floats by their bits (so
// -0 differs from 0) and times by their instant.
type exact struct {
	ID, Key   string
	KeyNil    bool
	Sec       int64
	Nsec      int
	HasTime   bool
	Fields    []exactField
	LabelBits uint64
	HasLabel  bool
}

type exactField struct {
	Name    string
	Kind    FieldKind
	NumBits uint64
	Str     string
	StrNil  bool
}

func exactOf(ev *Event) exact {
	e := exact{ID: string(ev.ID), Key: string(ev.Key), KeyNil: ev.Key == nil, HasTime: ev.HasTime,
		LabelBits: math.Float64bits(ev.Label), HasLabel: ev.HasLabel}
	if ev.HasTime {
		e.Sec, e.Nsec = ev.Time.Unix(), ev.Time.Nanosecond()
	}
	for _, f := range ev.Fields {
		e.Fields = append(e.Fields, exactField{string(f.Name), f.Kind, math.Float64bits(f.Num), string(f.Str), f.Str == nil})
	}
	return e
}

func mustAppendEvent(t testing.TB, ev *Event) []byte {
	t.Helper()
	data, err := AppendEvent(nil, ev)
	if err != nil {
		t.Fatalf("AppendEvent(%+v): %v", ev, err)
	}
	return data
}

func decodeOrFail(t testing.TB, data []byte) *Event {
	t.Helper()
	var ev Event
	if err := NewDecoder(DecoderConfig{}).Decode(data, &ev); err != nil {
		t.Fatalf("Decode(%s): %v", data, err)
	}
	return &ev
}

func TestAppendEventWritesTheContractsJSON(t *testing.T) {
	ev := Event{
		ID: []byte("e-1842"), Key: []byte("user-42"), Time: utc("2026-11-20T10:00:00.5Z"), HasTime: true,
		Fields: []Field{
			{Name: []byte("amount"), Kind: KindNumber, Num: 12.5},
			{Name: []byte("country"), Kind: KindString, Str: []byte("DE")},
			{Name: []byte("is_new"), Kind: KindBool, Num: 1},
			{Name: []byte("n"), Kind: KindNumber, Num: 1e21},
		},
		Label: 1, HasLabel: true,
		Partition: 3, Offset: 99, // not part of the message
	}
	const want = `{"id":"e-1842","key":"user-42","ts":"2026-11-20T10:00:00.5Z",` +
		`"features":{"amount":12.5,"country":"DE","is_new":true,"n":1e+21},"label":1}`
	if got := string(mustAppendEvent(t, &ev)); got != want {
		t.Fatalf("AppendEvent wrote\n%s\nwant\n%s", got, want)
	}
	minimal := Event{ID: []byte("a")}
	if got := string(mustAppendEvent(t, &minimal)); got != `{"id":"a","features":{}}` {
		t.Fatalf("an event with only an id is written as %s", got)
	}
}

func TestAppendEventRoundTripsThroughTheDecoder(t *testing.T) {
	str := func(name, v string) Field { return Field{Name: []byte(name), Kind: KindString, Str: []byte(v)} }
	number := func(name string, x float64) Field { return Field{Name: []byte(name), Kind: KindNumber, Num: x} }
	var allASCII, allControls strings.Builder
	for c := range utf8.RuneSelf {
		allASCII.WriteByte(byte(c))
		if c < 0x20 {
			allControls.WriteByte(byte(c))
		}
	}
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"every ASCII character in an id, a key, a name and a value", Event{ID: []byte(allASCII.String()), Key: []byte(allASCII.String()),
			Fields: []Field{str(allASCII.String(), allASCII.String())}}},
		{"quotes, backslashes and control characters", Event{ID: []byte(`"\` + allControls.String()),
			Fields: []Field{str(`a"b\c`, "line\nbreak\ttab\rreturn\x00nul\x1fus\u2028ls")}}},
		{"multi-byte UTF-8 and a character beyond the BMP", Event{ID: []byte("é-€-𝄞"), Fields: []Field{str("größe", "日本語 🙂")}}},
		{"an empty key is kept apart from no key", Event{ID: []byte("a"), Key: []byte{}}},
		{"an empty categorical value", Event{ID: []byte("a"), Fields: []Field{str("s", "")}}},
		{"numbers at the edges of float64", Event{ID: []byte("a"), Fields: []Field{
			number("max", math.MaxFloat64), number("-max", -math.MaxFloat64), number("tiny", 5e-324),
			number("smallest-normal", 2.2250738585072014e-308), number("-0", math.Copysign(0, -1)), number("0", 0),
			number("third", 1.0/3), number("pi", math.Pi), number("2^53+2", 1<<53+2), number("1e-7", 1e-7),
			number("big int", 123456789012345678), number("0.1+0.2", 0.1+0.2)}}},
		{"booleans", Event{ID: []byte("a"), Fields: []Field{{Name: []byte("t"), Kind: KindBool, Num: 1}, {Name: []byte("f"), Kind: KindBool}}}},
		{"labels of every kind a model takes", Event{ID: []byte("a"), Label: -0.25e-300, HasLabel: true}},
		{"a zero label is a label", Event{ID: []byte("a"), HasLabel: true}},
		{"nanoseconds", Event{ID: []byte("a"), Time: utc("2026-11-20T10:00:00.000000001Z"), HasTime: true}},
		{"the first instant RFC 3339 writes", Event{ID: []byte("a"), Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), HasTime: true}},
		{"the last nanosecond of year 9999", Event{ID: []byte("a"), Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), HasTime: true}},
		{"an instant in another zone is written in UTC", Event{ID: []byte("a"), Time: time.Date(2026, 11, 20, 12, 0, 0, 7, time.FixedZone("x", 7200)), HasTime: true}},
		{"year 10000 as epoch milliseconds", Event{ID: []byte("a"), Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), HasTime: true}},
		{"before year 0 as epoch milliseconds with a fraction", Event{ID: []byte("a"), Time: time.UnixMilli(-1e15).Add(-7875 * time.Microsecond), HasTime: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := mustAppendEvent(t, &tc.ev)
			if !json.Valid(data) {
				t.Fatalf("not JSON: %s", data)
			}
			got, want := exactOf(decodeOrFail(t, data)), exactOf(&tc.ev)
			for i := range want.Fields {
				if want.Fields[i].Kind == KindString && want.Fields[i].Str == "" {
					want.Fields[i].StrNil = got.Fields[i].StrNil // the decoder hands out an empty, maybe nil, slice
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s decodes to\n%+v\nwant\n%+v", data, got, want)
			}
			// encoding/json agrees on the strings.
			var doc struct {
				ID       string         `json:"id"`
				Features map[string]any `json:"features"`
			}
			if err := json.Unmarshal(data, &doc); err != nil || doc.ID != string(tc.ev.ID) {
				t.Fatalf("encoding/json reads id %q (%v), want %q", doc.ID, err, tc.ev.ID)
			}
		})
	}
}

func TestAppendEventRefusesWhatTheDecoderWouldRejectAndLeavesDstAlone(t *testing.T) {
	far := time.Date(300000, 1, 1, 0, 0, 0, 1, time.UTC) // year 300,000 plus 1 ns: no float64 of ms holds it
	for _, tc := range []struct {
		name   string
		ev     Event
		reason Reason
		detail string
	}{
		{"an empty id", Event{}, ReasonMissingField, "id is empty"},
		{"an id that is not UTF-8", Event{ID: []byte("a\xff")}, ReasonInvalidUTF8, `id "a\xff"`},
		{"a key that is not UTF-8", Event{ID: []byte("a"), Key: []byte("\xc3")}, ReasonInvalidUTF8, "key"},
		{"a feature name that is not UTF-8", Event{ID: []byte("a"), Fields: []Field{{Name: []byte("K\xf6ln"), Kind: KindNumber}}}, ReasonInvalidUTF8, "feature name"},
		{"a categorical value that is not UTF-8", Event{ID: []byte("a"), Fields: []Field{{Name: []byte("city"), Kind: KindString, Str: []byte("K\xf6ln")}}}, ReasonInvalidUTF8, `feature "city" value`},
		{"a NaN feature", Event{ID: []byte("a"), Fields: []Field{{Name: []byte("x"), Kind: KindNumber, Num: math.NaN()}}}, ReasonNonFinite, `feature "x" is NaN`},
		{"an infinite feature", Event{ID: []byte("a"), Fields: []Field{{Name: []byte("x"), Kind: KindNumber, Num: math.Inf(-1)}}}, ReasonNonFinite, "-Inf"},
		{"an infinite label", Event{ID: []byte("a"), Label: math.Inf(1), HasLabel: true}, ReasonNonFinite, "label is +Inf"},
		{"a field without a kind", Event{ID: []byte("a"), Fields: []Field{{Name: []byte("x")}}}, ReasonWrongType, "FieldKind(0)"},
		{"an instant no epoch-milliseconds float64 holds", Event{ID: []byte("a"), Time: far, HasTime: true}, ReasonWrongType, "outside years 0-9999"},
		{"an instant beyond the decoder's range", Event{ID: []byte("a"), Time: time.Unix(1<<62, 0), HasTime: true}, ReasonWrongType, "ts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("kept")
			got, err := AppendEvent(dst, &tc.ev)
			var ee *EncodeError
			if !errors.As(err, &ee) || ee.Reason != tc.reason || !strings.Contains(ee.Detail, tc.detail) {
				t.Fatalf("err = %#v, want an *EncodeError %s mentioning %q", err, tc.reason, tc.detail)
			}
			if !strings.HasPrefix(err.Error(), "stream: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if string(got) != "kept" {
				t.Fatalf("dst became %q on error, want it as given", got)
			}
		})
	}
	// A bool is true when Num is non-zero; it is not an error.
	ev := Event{ID: []byte("a"), Fields: []Field{{Name: []byte("b"), Kind: KindBool, Num: 2}}}
	if got := decodeOrFail(t, mustAppendEvent(t, &ev)); got.Fields[0].Num != 1 {
		t.Fatalf("a bool of Num 2 decodes as %v, want true (1)", got.Fields[0].Num)
	}
}

func TestAppendEventDoesNotAllocateWhenDstHasRoom(t *testing.T) {
	for _, in := range []string{typicalBenchEvent, manyFields(80), escapedEvent} {
		ev := decodeOrFail(t, []byte(in))
		dst := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if dst, err = AppendEvent(dst[:0], ev); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("AppendEvent(%.40s...) allocates %v times per run, want 0", in, allocs)
		}
	}
}

func BenchmarkAppendEvent(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"typical-8-features", typicalBenchEvent},
		{"80-numeric-features", manyFields(80)},
		{"escaped-strings", escapedEvent},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev := decodeOrFail(b, []byte(bc.in))
			dst := mustAppendEvent(b, ev)
			b.ReportAllocs()
			b.SetBytes(int64(len(dst)))
			for b.Loop() {
				dst, _ = AppendEvent(dst[:0], ev)
			}
		})
	}
}

// FuzzEncodeDecode checks the encoder against the decoder both ways: an
// event the decoder accepts (from data) is written again and decodes to
// itself, bit for bit; and an event built from the other arguments is
// either written, and then decodes to the same event, or refused for a
// reason it really has.
func FuzzEncodeDecode(f *testing.F) {
	for _, tc := range validCases {
		f.Add([]byte(tc.in), "e-1", "user-1", int64(1763632800), int64(0), 12.5, "DE", 1.0, uint8(0xff))
	}
	f.Add([]byte(typicalBenchEvent), "", "", int64(0), int64(0), 0.0, "", 0.0, uint8(0))
	f.Add([]byte(escapedEvent), "a\"\\\x01", "\xff", int64(-62167219201), int64(999999999), math.Copysign(0, -1), "\u2028\x7f", -1e-300, uint8(0x0f))
	f.Add([]byte(`{"id":"a","ts":-1e15,"features":{}}`), "a", "", int64(1<<40), int64(1), math.MaxFloat64, "x", 5e-324, uint8(0x03))
	f.Add([]byte(`{"id":"a","ts":9.2233720368547748e18,"features":{}}`), "a", "", int64(253402300800), int64(0), 1.0, "", 1.0, uint8(0x03))
	f.Fuzz(func(t *testing.T, data []byte, id, key string, sec, nsec int64, num float64, str string, label float64, flags uint8) {
		var decoded Event
		if NewDecoder(DecoderConfig{}).Decode(data, &decoded) == nil {
			again := mustAppendEvent(t, &decoded)
			if got, want := exactOf(decodeOrFail(t, again)), exactOf(&decoded); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s decodes to\n%+v\nre-encoded as %s it decodes to\n%+v", data, want, again, got)
			}
		}
		built := Event{ID: []byte(id), Fields: []Field{
			{Name: []byte("n"), Kind: KindNumber, Num: num},
			{Name: []byte(str + "/name"), Kind: KindString, Str: []byte(str)},
			{Name: []byte("b"), Kind: KindBool, Num: float64(flags >> 7)},
		}}
		if flags&1 != 0 {
			built.Key = []byte(key)
			if built.Key == nil {
				built.Key = []byte{}
			}
		}
		if flags&2 != 0 {
			built.Time, built.HasTime = time.Unix(sec, nsec), true
		}
		if flags&4 != 0 {
			built.Label, built.HasLabel = label, true
		}
		out, err := AppendEvent(nil, &built)
		if err != nil {
			checkRefusal(t, &built, err)
			return
		}
		got, want := exactOf(decodeOrFail(t, out)), exactOf(&built)
		want.Fields[1].StrNil = got.Fields[1].StrNil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%+v is written as %s, which decodes to\n%+v", want, out, got)
		}
	})
}

// checkRefusal fails unless ev really has the fault err names.
func checkRefusal(t *testing.T, ev *Event, err error) {
	t.Helper()
	var ee *EncodeError
	if !errors.As(err, &ee) {
		t.Fatalf("error %#v is not an *EncodeError", err)
	}
	valid := utf8.Valid(ev.ID) && utf8.Valid(ev.Key)
	for _, f := range ev.Fields {
		valid = valid && utf8.Valid(f.Name) && utf8.Valid(f.Str)
	}
	finite := !math.IsNaN(ev.Fields[0].Num) && !math.IsInf(ev.Fields[0].Num, 0) &&
		(!ev.HasLabel || !math.IsNaN(ev.Label) && !math.IsInf(ev.Label, 0))
	year := ev.Time.UTC().Year()
	justified := map[Reason]bool{
		ReasonMissingField: len(ev.ID) == 0,
		ReasonInvalidUTF8:  !valid,
		ReasonNonFinite:    !finite,
		ReasonWrongType:    ev.HasTime && (year < 0 || year > 9999),
	}
	if !justified[ee.Reason] {
		t.Fatalf("%+v refused with %s (%v), which it does not have", ev, ee.Reason, fmt.Sprint(err))
	}
}
