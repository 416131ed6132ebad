package stream

// Label is a label that arrives after its event, on a labels topic:
//
//	{"id": "e-1842", "label": 1}
//
// ID follows the validity rules of Event.ID: it aliases the input or the
// Decoder, so copy it to keep it beyond the next decode.
type Label struct {
	ID    []byte
	Value float64
}

// DecodeLabel parses a labels-topic message into l, overwriting it. It is
// the event decoder with a label's members: "id" (a non-empty string of
// valid UTF-8) and "label" (a finite number or a boolean, not null) are
// required, every other key is validated and skipped, and an invalid message
// is a *DecodeError with the same reasons and limits as Decode (a repeated
// "id" or "label" is ReasonDuplicateField, 1e999 is ReasonNonFinite). Like
// Decode, it allocates nothing in steady state.
func (d *Decoder) DecodeLabel(data []byte, l *Label) error {
	var ev Event
	if err := d.decode(data, &ev, docLabel); err != nil {
		return err
	}
	*l = Label{ID: ev.ID, Value: ev.Label}
	return nil
}

// DecodeLabel is Decoder.DecodeLabel with a Decoder of default limits used
// for this call only (so l.ID aliases data or memory no one else uses).
// Callers decoding many labels should reuse a Decoder.
func DecodeLabel(data []byte, l *Label) error {
	var d Decoder
	return d.DecodeLabel(data, l)
}
