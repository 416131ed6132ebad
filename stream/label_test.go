package stream

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeLabelAcceptsValidLabels(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		id       string
		value    float64
	}{
		{"the contract example decodes", `{"id": "e-1842", "label": 1}`, "e-1842", 1},
		{"a fractional label is kept", `{"id":"a","label":0.25}`, "a", 0.25},
		{"true is 1", `{"id":"a","label":true}`, "a", 1},
		{"false is 0", `{"label":false,"id":"a"}`, "a", 0},
		{"unknown keys are skipped", `{"id":"a","meta":{"x":[1,"NaN"]},"label":2}`, "a", 2},
		{"unknown keys may repeat", `{"id":"a","x":1,"x":2,"label":2}`, "a", 2},
		{"event-only keys are unknown in a label and may repeat", `{"id":"a","ts":"x","ts":1,"features":{},"label":3}`, "a", 3},
		{"an escaped id is unescaped", `{"id":"\u00e9-1","label":1}`, "é-1", 1},
		{"raw UTF-8 in the id passes through", `{"id":"ñandú","label":1}`, "ñandú", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l Label
			if err := DecodeLabel([]byte(tc.in), &l); err != nil {
				t.Fatalf("DecodeLabel(%s) = %v", tc.in, err)
			}
			if string(l.ID) != tc.id || l.Value != tc.value {
				t.Errorf("DecodeLabel(%s) = {%q, %v}, want {%q, %v}", tc.in, l.ID, l.Value, tc.id, tc.value)
			}
		})
	}
}

var invalidLabels = []struct {
	name   string
	in     string
	reason Reason
	detail string // a substring of Detail
}{
	{"a label overflowing float64 is non-finite", `{"id":"a","label":1e999}`, ReasonNonFinite, "label overflows float64"},
	{"a negative label overflowing float64 is non-finite", `{"id":"a","label":-1e999}`, ReasonNonFinite, "label overflows float64"},
	{"a NaN label is non-finite", `{"id":"a","label":NaN}`, ReasonNonFinite, "label is NaN"},
	{"an Infinity label is non-finite", `{"id":"a","label":-Infinity}`, ReasonNonFinite, "label is -Infinity"},
	{"a duplicated id is a duplicate field", `{"id":"a","id":"b","label":1}`, ReasonDuplicateField, `duplicate field "id"`},
	{"a duplicated label is a duplicate field", `{"id":"a","label":1,"label":0}`, ReasonDuplicateField, `duplicate field "label"`},
	{"invalid JSON mentioning NaN is invalid JSON", `{"id":"NaN","label":1`, ReasonInvalidJSON, "end of input"},
	{"invalid JSON mentioning Infinity is invalid JSON", `{"id":"Infinity" "label":1}`, ReasonInvalidJSON, "expected ',' or '}'"},
	{"an unknown key holding NaN is non-finite", `{"id":"a","label":1,"score":NaN}`, ReasonNonFinite, `field "score" is NaN`},
	{"trailing data is invalid JSON", `{"id":"a","label":1} {}`, ReasonInvalidJSON, "unexpected data after label"},
	{"not JSON is invalid JSON", `label=1`, ReasonInvalidJSON, "at byte 0"},
	{"a missing id is a missing field", `{"label":1}`, ReasonMissingField, `missing required field "id"`},
	{"an empty id is a missing field", `{"id":"","label":1}`, ReasonMissingField, `"id" is empty`},
	{"a missing label is a missing field", `{"id":"a"}`, ReasonMissingField, `missing required field "label"`},
	{"a null label is a missing field", `{"id":"a","label":null}`, ReasonMissingField, `missing required field "label"`},
	{"a numeric id is the wrong type", `{"id":7,"label":1}`, ReasonWrongType, "id must be a string, got number"},
	{"a string label is the wrong type", `{"id":"a","label":"1"}`, ReasonWrongType, "label must be a number or boolean, got string"},
	{"an id with invalid UTF-8 is rejected", "{\"id\":\"a\xff\",\"label\":1}", ReasonInvalidUTF8, `id "a\xff" is not valid UTF-8`},
	{"a message over 1 MiB is too large", `{"id":"a","label":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`, ReasonTooLarge, "limit of 1048576"},
}

func TestDecodeLabelRejectsInvalidLabelsWithTheEventDecodersReasons(t *testing.T) {
	for _, tc := range invalidLabels {
		t.Run(tc.name, func(t *testing.T) {
			var l Label
			err := DecodeLabel([]byte(tc.in), &l)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("DecodeLabel(%.60s) = %v, want a *DecodeError", tc.in, err)
			}
			if de.Reason != tc.reason || !strings.Contains(de.Detail, tc.detail) {
				t.Errorf("DecodeLabel(%.60s) = %s %q, want %s mentioning %q", tc.in, de.Reason, de.Detail, tc.reason, tc.detail)
			}
		})
	}
}

func TestDecodeLabelReusesTheDecoderWithoutAllocating(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var l Label
	for _, in := range []string{`{"id":"e-1842","label":1}`, `{"id":"\u00e9-1842","label":0.5,"meta":[1,{"a":null}]}`} {
		data := []byte(in)
		allocs := testing.AllocsPerRun(100, func() {
			if err := d.DecodeLabel(data, &l); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("DecodeLabel(%s) allocates %v times per run, want 0", in, allocs)
		}
	}
}

func TestALabelMessageLimitIsTheDecodersLimit(t *testing.T) {
	var l Label
	err := NewDecoder(DecoderConfig{MaxBytes: 16}).DecodeLabel([]byte(`{"id":"abc","label":1}`), &l)
	var de *DecodeError
	if !errors.As(err, &de) || de.Reason != ReasonTooLarge {
		t.Fatalf("a label over MaxBytes: %v, want %s", err, ReasonTooLarge)
	}
}

func BenchmarkDecodeLabel(b *testing.B) {
	d := NewDecoder(DecoderConfig{})
	var l Label
	data := []byte(`{"id":"e-1842","label":1}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := d.DecodeLabel(data, &l); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeLabel(f *testing.F) {
	for _, tc := range invalidLabels {
		if len(tc.in) <= 4096 {
			f.Add([]byte(tc.in))
		}
	}
	f.Add([]byte(`{"id":"e-1842","label":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var l Label
		err := NewDecoder(DecoderConfig{}).DecodeLabel(data, &l)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !knownReason(de.Reason) {
				t.Fatalf("error %#v is not a *DecodeError with a known reason", err)
			}
			return
		}
		if !json.Valid(data) || len(l.ID) == 0 || !utf8.Valid(l.ID) || math.IsNaN(l.Value) || math.IsInf(l.Value, 0) {
			t.Fatalf("accepted %q as {%q, %v}", data, l.ID, l.Value)
		}
	})
}
