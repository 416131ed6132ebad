package stream

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// EncodeError says why an event cannot be encoded. Reason is the code the
// Decoder would give the message, had it been written: the encoder refuses
// exactly what a consumer would dead-letter for its form.
type EncodeError struct {
	Reason Reason
	Detail string
}

// Error returns "stream: cannot encode event: " followed by Detail.
func (e *EncodeError) Error() string { return "stream: cannot encode event: " + e.Detail }

// RFC 3339 timestamps have four-digit years; outside them ts is written as
// epoch milliseconds.
var (
	minRFC3339 = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxRFC3339 = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// AppendEvent appends ev as one JSON event, the message Decoder.Decode
// reads, to dst and returns the extended buffer. It allocates nothing when
// dst has the capacity.
//
// What it writes decodes to ev again: the same id, key, strings and
// feature order, numbers with the same float64 bits (each in the shortest
// form that reads back exactly, as strconv.FormatFloat with 'g' and -1
// writes it), and the same instant. In detail:
//   - "id" always; "key" when ev.Key is not nil (an empty key is written as
//     ""); "ts" when ev.HasTime; "label" when ev.HasLabel.
//   - ts is RFC 3339 in UTC with nanoseconds (trailing zeros dropped) for
//     years 0 to 9999, which RFC 3339 can write, and epoch milliseconds, a
//     JSON number, outside them. The decoder reads both, and such far
//     instants reach it only as epoch milliseconds; one that a float64
//     number of milliseconds cannot hold exactly is refused.
//   - a KindBool field is true when Num is non-zero.
//   - strings are escaped as JSON requires: '"', '\\' and every control
//     character below U+0020 (as \n, \r, \t, \b, \f or \u00XX); all else
//     is copied as it is.
//
// It refuses, with an *EncodeError carrying the Reason the Decoder would
// report, an empty id (ReasonMissingField), an id, key, feature name or
// categorical value that is not valid UTF-8 (ReasonInvalidUTF8), a NaN or
// infinite feature or label (ReasonNonFinite), a field whose Kind is not
// one of the three and a ts it cannot write exactly (ReasonWrongType). On error dst is returned as it
// was given (same length). Feature names must be unique; AppendEvent does
// not check (the Decoder rejects a repeat as ReasonDuplicateField).
// Partition and Offset are not part of the message and are not written.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) {
	out, err := appendEvent(dst, ev)
	if err != nil {
		return dst, err
	}
	return out, nil
}

func appendEvent(dst []byte, ev *Event) ([]byte, *EncodeError) {
	if len(ev.ID) == 0 {
		return dst, &EncodeError{ReasonMissingField, "the id is empty"}
	}
	var ok bool
	dst = append(dst, `{"id":`...)
	if dst, ok = appendString(dst, ev.ID); !ok {
		return dst, notUTF8("id", ev.ID)
	}
	if ev.Key != nil {
		dst = append(dst, `,"key":`...)
		if dst, ok = appendString(dst, ev.Key); !ok {
			return dst, notUTF8("key", ev.Key)
		}
	}
	if ev.HasTime {
		dst = append(dst, `,"ts":`...)
		if dst, ok = appendTime(dst, ev.Time); !ok {
			return dst, &EncodeError{ReasonWrongType, "ts " + ev.Time.UTC().String() +
				" is outside years 0-9999 and no float64 of epoch milliseconds holds it exactly"}
		}
	}
	dst = append(dst, `,"features":{`...)
	for i := range ev.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err *EncodeError
		if dst, err = appendField(dst, &ev.Fields[i]); err != nil {
			return dst, err
		}
	}
	dst = append(dst, '}')
	if ev.HasLabel {
		if !finite(ev.Label) {
			return dst, &EncodeError{ReasonNonFinite, "the label is " + strconv.FormatFloat(ev.Label, 'g', -1, 64)}
		}
		dst = append(dst, `,"label":`...)
		dst = strconv.AppendFloat(dst, ev.Label, 'g', -1, 64)
	}
	return append(dst, '}'), nil
}

func appendField(dst []byte, f *Field) ([]byte, *EncodeError) {
	dst, ok := appendString(dst, f.Name)
	if !ok {
		return dst, notUTF8("feature name", f.Name)
	}
	dst = append(dst, ':')
	switch f.Kind {
	case KindNumber:
		if !finite(f.Num) {
			return dst, &EncodeError{ReasonNonFinite, "feature " + quote(f.Name) + " is " + strconv.FormatFloat(f.Num, 'g', -1, 64)}
		}
		return strconv.AppendFloat(dst, f.Num, 'g', -1, 64), nil
	case KindString:
		if dst, ok = appendString(dst, f.Str); !ok {
			return dst, notUTF8("feature "+quote(f.Name)+" value", f.Str)
		}
		return dst, nil
	case KindBool:
		return strconv.AppendBool(dst, f.Num != 0), nil
	}
	return dst, &EncodeError{ReasonWrongType, "feature " + quote(f.Name) + " has kind " + f.Kind.String()}
}

// notUTF8 is the error for a string that is not valid UTF-8, worded as the
// decoder's.
func notUTF8(what string, s []byte) *EncodeError {
	return &EncodeError{ReasonInvalidUTF8, what + " " + quote(s) + " is not valid UTF-8"}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// appendTime writes t as the decoder's ts; see AppendEvent. ok is false if
// t is too far out even for epoch milliseconds.
func appendTime(dst []byte, t time.Time) (out []byte, ok bool) {
	t = t.UTC()
	if !t.Before(minRFC3339) && t.Before(maxRFC3339) {
		dst = append(dst, '"')
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), true
	}
	return appendEpochMillis(dst, t)
}

// maxEpochSeconds bounds the seconds whose milliseconds fit the uint64
// arithmetic below; the decoder's own range (±2^63 ms) is checked after.
const maxEpochSeconds = 1<<63/1000 + 1

// appendEpochMillis writes t as exact decimal epoch milliseconds, so that
// the decoder's strconv.ParseFloat rounds it once, to the nearest float64:
// an instant the decoder made from a number of milliseconds reads back as
// that number, so as the same instant. ok is false (and dst unchanged) if
// the decoder would refuse the number as out of range, or read it as
// another instant (a float64 of milliseconds this large cannot hold every
// nanosecond).
func appendEpochMillis(dst []byte, t time.Time) (out []byte, ok bool) {
	sec, nsec := t.Unix(), int64(t.Nanosecond()) // t = sec + nsec/1e9, nsec in [0, 1e9)
	neg := sec < 0
	if neg && nsec > 0 {
		sec, nsec = sec+1, 1e9-nsec // t = -(-sec + nsec/1e9): sign and magnitude
	}
	magnitude := uint64(sec)
	if neg {
		magnitude = uint64(-sec) // -MinInt64 wraps to itself, whose uint64 is 2^63: still right
	}
	if magnitude > maxEpochSeconds {
		return dst, false
	}
	start := len(dst)
	if neg {
		dst = append(dst, '-')
	}
	dst = strconv.AppendUint(dst, magnitude*1000+uint64(nsec/1e6), 10)
	if sub := nsec % 1e6; sub != 0 {
		var digits [6]byte
		for i := len(digits) - 1; i >= 0; i-- {
			digits[i] = byte('0' + sub%10)
			sub /= 10
		}
		end := len(digits)
		for digits[end-1] == '0' {
			end--
		}
		dst = append(dst, '.')
		dst = append(dst, digits[:end]...)
	}
	// Read it as the decoder will, and keep it only if that is t again. Only
	// instants outside years 0-9999 get here, so the string this converts
	// to costs nothing that matters.
	x, err := strconv.ParseFloat(string(dst[start:]), 64)
	if back, inRange := fromEpochMillis(x); err != nil || !inRange || !back.Equal(t) {
		return dst[:start], false
	}
	return dst, true
}

// appendString writes s as a JSON string; ok is false if s is not valid
// UTF-8 (dst then holds part of it: the caller discards it).
func appendString(dst []byte, s []byte) (out []byte, ok bool) {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is still to be copied
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, false
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}
