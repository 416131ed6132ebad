package stream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Label is a label that arrives after its event, on a labels topic:
//
//	{"id": "e-1842", "label": 1}
type Label struct {
	ID    []byte
	Value float64
}

// DecodeLabel parses a labels-topic message. Like Decode it returns a
// *DecodeError naming the problem. Labels are rarer than events, so this
// uses encoding/json rather than the zero-allocation event decoder.
func DecodeLabel(data []byte, l *Label) error {
	var raw struct {
		ID    json.RawMessage `json:"id"`
		Label json.RawMessage `json:"label"`
	}
	if len(data) > DefaultMaxBytes {
		return &DecodeError{Reason: ReasonTooLarge, Detail: fmt.Sprintf("label message of %d bytes exceeds %d", len(data), DefaultMaxBytes)}
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		if bytes.Contains(data, []byte("NaN")) || bytes.Contains(data, []byte("Infinity")) {
			return &DecodeError{Reason: ReasonNonFinite, Detail: "label is not a finite number"}
		}
		return &DecodeError{Reason: ReasonInvalidJSON, Detail: "invalid JSON label: " + err.Error()}
	}
	var id string
	if len(raw.ID) == 0 {
		return &DecodeError{Reason: ReasonMissingField, Detail: `missing required field "id"`}
	}
	if err := json.Unmarshal(raw.ID, &id); err != nil || id == "" {
		return &DecodeError{Reason: ReasonWrongType, Detail: `field "id" must be a non-empty string`}
	}
	if len(raw.Label) == 0 || string(raw.Label) == "null" {
		return &DecodeError{Reason: ReasonMissingField, Detail: `missing required field "label"`}
	}
	switch s := string(raw.Label); s {
	case "true":
		l.Value = 1
	case "false":
		l.Value = 0
	default:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return &DecodeError{Reason: ReasonWrongType, Detail: fmt.Sprintf("label %s must be a number or a boolean", s)}
		}
		if math.IsInf(x, 0) {
			return &DecodeError{Reason: ReasonNonFinite, Detail: fmt.Sprintf("label %s is not finite", s)}
		}
		l.Value = x
	}
	l.ID = []byte(id)
	return nil
}
