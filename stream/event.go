package stream

import (
	"bytes"
	"hash/maphash"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/segmentio/kafka-go"
)

// FieldKind says which JSON type a feature value had.
type FieldKind uint8

// The kinds of feature value an event may carry. The zero FieldKind is not a
// valid kind, so an uninitialised Field is distinguishable from a decoded one.
const (
	KindNumber FieldKind = iota + 1 // a finite JSON number
	KindString                      // a JSON string
	KindBool                        // JSON true or false
)

// String returns the lower-case JSON type name of k, for logs and test output.
func (k FieldKind) String() string {
	switch k {
	case KindNumber:
		return "number"
	case KindString:
		return "string"
	case KindBool:
		return "bool"
	}
	return "FieldKind(" + strconv.Itoa(int(k)) + ")"
}

// Field is one raw feature of an event.
//
// Name and Str alias either the input passed to Decoder.Decode or the
// Decoder's scratch buffer. They are valid only until the next Decode call on
// the same Decoder and only while the input is left unmodified; copy them to
// keep them longer.
type Field struct {
	Name []byte
	Kind FieldKind
	Num  float64 // KindNumber: the value; KindBool: 1 for true, 0 for false
	Str  []byte  // KindString: the unescaped string; nil for other kinds
}

// Event is a decoded event. Reuse one Event across Decode calls to avoid
// allocation: Decode keeps the capacity of Fields.
//
// The byte slices (ID, Key and those inside Fields) follow the same validity
// rules as Field.Name: they alias the input or the Decoder and must be copied
// to outlive the next Decode call.
type Event struct {
	ID       []byte
	Key      []byte    // the "key" field if present, else nil (callers fall back to the Kafka message key)
	Time     time.Time // the "ts" field in UTC; zero if absent (HasTime false)
	HasTime  bool
	Fields   []Field // in input order; names are unique
	Label    float64 // 0 unless HasLabel
	HasLabel bool

	// Partition and Offset locate the Kafka message; the Consumer sets them,
	// Decode leaves them alone.
	Partition int
	Offset    int64
}

// Reason is a bounded, metric-safe code for why an event was rejected. It is
// safe to use as a metric label: the set of values is fixed to the constants
// below.
type Reason string

// The reasons Decode and DecodeLabel may report.
const (
	ReasonInvalidJSON    Reason = "invalid_json"    // not JSON, not an object, or nested too deep
	ReasonMissingField   Reason = "missing_field"   // "id" or "features" (a label: "label") absent, "id" empty or a label null
	ReasonWrongType      Reason = "wrong_type"      // a known field or feature has an unsupported JSON type or format
	ReasonNonFinite      Reason = "non_finite"      // NaN, ±Infinity or a number overflowing float64
	ReasonDuplicateField Reason = "duplicate_field" // a known top-level key or a feature name repeats
	ReasonTooLarge       Reason = "too_large"       // message or feature count over the configured limit
	ReasonInvalidUTF8    Reason = "invalid_utf8"    // an id, key, feature name or categorical value is not valid UTF-8
)

// DecodeError says why an event is invalid. Reason is a bounded code; Detail
// is a human-readable message naming the field or byte offset, e.g.
// `feature "amount" is NaN` or `invalid JSON at byte 17: expected ':'`.
// Detail owns its memory: it never aliases the input.
type DecodeError struct {
	Reason Reason
	Detail string
}

// Error returns "stream: " followed by Detail.
func (e *DecodeError) Error() string { return "stream: " + e.Detail }

// Defaults applied to zero (or negative) DecoderConfig fields.
const (
	DefaultMaxFields = 1024
	DefaultMaxDepth  = 32
	DefaultMaxBytes  = 1 << 20
)

// DecoderConfig bounds the work a single message can cause. The zero value
// selects the defaults.
type DecoderConfig struct {
	// MaxFields is the maximum number of features per event; more is
	// ReasonTooLarge. Default DefaultMaxFields (1024).
	MaxFields int
	// MaxDepth is the maximum nesting depth of the document while skipping
	// unknown top-level values, counting the event object itself as depth 1;
	// deeper is ReasonInvalidJSON. Default DefaultMaxDepth (32).
	MaxDepth int
	// MaxBytes is the maximum message size in bytes; larger messages are
	// rejected with ReasonTooLarge before parsing. Default DefaultMaxBytes
	// (1 MiB).
	MaxBytes int
}

// Decoder decodes events, reusing its internal buffers between calls so that
// steady-state decoding does not allocate. A Decoder is not safe for
// concurrent use; give each goroutine its own. The zero value is ready to use
// with default limits.
type Decoder struct {
	cfg DecoderConfig

	// Per-call parse state; data is dropped at the end of Decode so the
	// Decoder does not pin the caller's buffer.
	data []byte
	pos  int
	at   where   // what is being parsed, for error details
	doc  docKind // what kind of message is being parsed

	ascii   bool    // the last string read was pure ASCII (so valid UTF-8)
	scratch []byte  // unescaped strings of the current call
	stack   []byte  // open containers while skipping unknown values
	names   nameSet // feature names of the current call, for duplicates
}

// NewDecoder returns a Decoder with the limits in cfg; zero fields take
// their defaults.
func NewDecoder(cfg DecoderConfig) *Decoder {
	return &Decoder{cfg: cfg}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Decode parses one JSON event from data into ev, overwriting it. It returns
// a *DecodeError on invalid input, in which case ev holds an unspecified
// partial result. It allocates nothing in steady state (once ev.Fields and
// the Decoder's buffers have grown) for events without string escapes, and
// escaped strings only cost scratch-buffer growth.
//
// The slices in ev alias data and the Decoder; see Event.
func (d *Decoder) Decode(data []byte, ev *Event) error {
	return d.decode(data, ev, docEvent)
}

// DecodeMessage decodes the event of a Kafka message as the consumer does:
// Decode of its value, then the message's key as the event's when the
// event names none, the message's time when it has none, and its
// partition and offset.
func (d *Decoder) DecodeMessage(m *kafka.Message, ev *Event) error {
	if err := d.Decode(m.Value, ev); err != nil {
		return err
	}
	if ev.Key == nil {
		ev.Key = m.Key
	}
	if !ev.HasTime {
		ev.Time, ev.HasTime = m.Time, true
	}
	ev.Partition, ev.Offset = m.Partition, m.Offset
	return nil
}

// docKind says which message a Decode call parses: an event or a label.
// Both share one parser, so they share its grammar, limits and reasons.
type docKind uint8

const (
	docEvent docKind = iota
	docLabel
)

func (k docKind) String() string {
	if k == docLabel {
		return "label"
	}
	return "event"
}

func (d *Decoder) decode(data []byte, ev *Event, doc docKind) error {
	if maxBytes := orDefault(d.cfg.MaxBytes, DefaultMaxBytes); len(data) > maxBytes {
		return &DecodeError{ReasonTooLarge, "message is " + strconv.Itoa(len(data)) +
			" bytes, over the limit of " + strconv.Itoa(maxBytes)}
	}
	*ev = Event{Fields: ev.Fields[:0]}
	d.data, d.pos, d.at, d.doc = data, 0, where{}, doc
	d.scratch = d.scratch[:0]
	d.names.reset()
	err := d.event(ev)
	d.data, d.at = nil, where{}
	if err != nil {
		return err // never a typed nil: err is checked first
	}
	return nil
}

// Bits recording which known top-level keys were seen.
const (
	seenID = 1 << iota
	seenKey
	seenTS
	seenFeatures
	seenLabel
)

func (d *Decoder) event(ev *Event) *DecodeError {
	d.skipWS()
	if err := d.expect('{', "expected '{' at start of event"); err != nil {
		return err
	}
	seen, err := d.members(ev)
	if err != nil {
		return err
	}
	d.at = where{}
	d.skipWS()
	if d.pos != len(d.data) {
		return d.syntaxErr(d.pos, "unexpected data after "+d.doc.String())
	}
	if seen&seenID == 0 {
		return &DecodeError{ReasonMissingField, `missing required field "id"`}
	}
	if d.doc == docLabel {
		if !ev.HasLabel { // absent or null: a label message is nothing else
			return &DecodeError{ReasonMissingField, `missing required field "label"`}
		}
		return nil
	}
	if seen&seenFeatures == 0 {
		return &DecodeError{ReasonMissingField, `missing required field "features"`}
	}
	return nil
}

// members parses the top-level members up to and including the closing '}'.
func (d *Decoder) members(ev *Event) (seen uint8, err *DecodeError) {
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return 0, nil
	}
	for {
		d.skipWS()
		d.at = where{} // a broken key belongs to the event, not the previous member
		key, err := d.objectKey()
		if err != nil {
			return seen, err
		}
		// Rejecting a repeated key before its value keeps a second
		// "features" object from being merged into the first.
		bit := d.knownBit(key)
		if seen&bit != 0 {
			return seen, &DecodeError{ReasonDuplicateField, "duplicate field " + quote(key)}
		}
		seen |= bit
		if err := d.member(key, bit, ev); err != nil {
			return seen, err
		}
		if done, err := d.nextMember(); done || err != nil {
			return seen, err
		}
	}
}

// knownBit returns the seen-bit of a top-level key known to the message
// being parsed, or 0. A label knows only "id" and "label"; its other keys
// are skipped like an event's unknown keys.
func (d *Decoder) knownBit(key []byte) uint8 {
	switch string(key) { // the compiler does not allocate for this conversion
	case "id":
		return seenID
	case "label":
		return seenLabel
	}
	if d.doc == docLabel {
		return 0
	}
	switch string(key) {
	case "key":
		return seenKey
	case "ts":
		return seenTS
	case "features":
		return seenFeatures
	}
	return 0
}

// member parses the value of one top-level key, whose knownBit is bit.
func (d *Decoder) member(key []byte, bit uint8, ev *Event) *DecodeError {
	switch bit {
	case seenID:
		d.at = where{kind: atKnown, known: "id"}
		return d.id(ev)
	case seenKey:
		d.at = where{kind: atKnown, known: "key"}
		return d.key(ev)
	case seenTS:
		d.at = where{kind: atKnown, known: "ts"}
		return d.ts(ev)
	case seenFeatures:
		d.at = where{kind: atKnown, known: "features"}
		return d.features(ev)
	case seenLabel:
		d.at = where{kind: atKnown, known: "label"}
		return d.label(ev)
	}
	d.at = where{kind: atUnknown, name: key}
	return d.skipValue()
}

// objectKey reads `"name" :` and leaves the position at the value.
func (d *Decoder) objectKey() ([]byte, *DecodeError) {
	if d.pos >= len(d.data) {
		return nil, d.syntaxErr(d.pos, "unexpected end of input")
	}
	if d.data[d.pos] != '"' {
		return nil, d.syntaxErr(d.pos, "expected string key, found "+describeByte(d.data[d.pos]))
	}
	key, err := d.readString()
	if err != nil {
		return nil, err
	}
	d.skipWS()
	if err := d.expect(':', "expected ':'"); err != nil {
		return nil, err
	}
	d.skipWS()
	return key, nil
}

// nextMember consumes the ',' or '}' after an object member; done reports '}'.
func (d *Decoder) nextMember() (done bool, err *DecodeError) {
	d.skipWS()
	if d.pos >= len(d.data) {
		return false, d.syntaxErr(d.pos, "unexpected end of input")
	}
	switch d.data[d.pos] {
	case ',':
		d.pos++
		return false, nil
	case '}':
		d.pos++
		return true, nil
	}
	return false, d.syntaxErr(d.pos, "expected ',' or '}', found "+describeByte(d.data[d.pos]))
}

func (d *Decoder) id(ev *Event) *DecodeError {
	v, err := d.scalar()
	if err != nil {
		return err
	}
	if v.kind != valString {
		return d.wrongType("must be a string", v.kind)
	}
	if len(v.str) == 0 {
		return &DecodeError{ReasonMissingField, `required field "id" is empty`}
	}
	if !d.validUTF8(v.str) {
		return invalidUTF8("id", v.str)
	}
	ev.ID = v.str
	return nil
}

// validUTF8 reports whether s, the string readString just returned, is
// valid UTF-8, without a second pass over ASCII strings.
func (d *Decoder) validUTF8(s []byte) bool { return d.ascii || utf8.Valid(s) }

// invalidUTF8 rejects a string the decoder would hand out: every id, key,
// feature name and categorical value must be text that a protobuf string
// (a Predict request or response) can carry, or a model would learn a
// feature that can never be served.
func invalidUTF8(what string, s []byte) *DecodeError {
	return &DecodeError{ReasonInvalidUTF8, what + " " + quote(s) + " is not valid UTF-8"}
}

func (d *Decoder) key(ev *Event) *DecodeError {
	v, err := d.scalar()
	if err != nil {
		return err
	}
	switch v.kind {
	case valNull:
		ev.Key = nil
	case valString:
		if !d.validUTF8(v.str) {
			return invalidUTF8("key", v.str)
		}
		ev.Key = v.str
	default:
		return d.wrongType("must be a string", v.kind)
	}
	return nil
}

func (d *Decoder) ts(ev *Event) *DecodeError {
	v, err := d.scalar()
	if err != nil {
		return err
	}
	switch v.kind {
	case valNull:
		ev.Time, ev.HasTime = time.Time{}, false
		return nil
	case valString:
		// time.Parse clones the value into any error it returns, so the
		// unsafe string does not escape this call.
		t, perr := time.Parse(time.RFC3339Nano, unsafeString(v.str))
		if perr != nil {
			return &DecodeError{ReasonWrongType, "ts " + quote(v.str) + " is not an RFC 3339 timestamp"}
		}
		ev.Time, ev.HasTime = t.UTC(), true
		return nil
	case valNumber:
		t, ok := fromEpochMillis(v.num)
		if !ok {
			return &DecodeError{ReasonWrongType, "ts " + strconv.FormatFloat(v.num, 'g', -1, 64) +
				" is out of range for epoch milliseconds"}
		}
		ev.Time, ev.HasTime = t, true
		return nil
	}
	return d.wrongType("must be an RFC 3339 string or epoch milliseconds", v.kind)
}

// fromEpochMillis converts possibly fractional epoch milliseconds to a UTC
// time, keeping sub-millisecond precision as nanoseconds.
func fromEpochMillis(ms float64) (time.Time, bool) {
	whole, frac := math.Modf(ms)
	// Beyond ±2^63 the int64 conversion is undefined; 2^63 is exact in float64.
	if whole < -(1<<63) || whole >= 1<<63 {
		return time.Time{}, false
	}
	nanos := time.Duration(math.Round(frac * 1e6))
	return time.UnixMilli(int64(whole)).Add(nanos).UTC(), true
}

func (d *Decoder) label(ev *Event) *DecodeError {
	v, err := d.scalar()
	if err != nil {
		return err
	}
	switch v.kind {
	case valNull:
		ev.Label, ev.HasLabel = 0, false
	case valNumber, valBool:
		ev.Label, ev.HasLabel = v.num, true
	default:
		return d.wrongType("must be a number or boolean", v.kind)
	}
	return nil
}

func (d *Decoder) features(ev *Event) *DecodeError {
	if d.pos < len(d.data) && d.data[d.pos] != '{' {
		v, err := d.scalar()
		if err != nil {
			return err
		}
		return d.wrongType("must be an object", v.kind)
	}
	if err := d.expect('{', "expected '{'"); err != nil {
		return err
	}
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return nil
	}
	maxFields := orDefault(d.cfg.MaxFields, DefaultMaxFields)
	for {
		d.skipWS()
		d.at = where{kind: atKnown, known: "features"}
		name, err := d.objectKey()
		if err != nil {
			return err
		}
		if !d.validUTF8(name) {
			return invalidUTF8("feature name", name)
		}
		d.at = where{kind: atFeature, name: name}
		if len(ev.Fields) >= maxFields {
			return &DecodeError{ReasonTooLarge, "features has more than " + strconv.Itoa(maxFields) + " fields"}
		}
		if d.names.insert(ev.Fields, name) {
			return &DecodeError{ReasonDuplicateField, "duplicate feature " + quote(name)}
		}
		f, err := d.feature(name)
		if err != nil {
			return err
		}
		ev.Fields = append(ev.Fields, f)
		done, err := d.nextMember()
		if err != nil {
			return err
		}
		if done {
			// Errors after the closing brace concern the event, not the
			// last feature.
			d.at = where{kind: atKnown, known: "features"}
			return nil
		}
	}
}

func (d *Decoder) feature(name []byte) (Field, *DecodeError) {
	v, err := d.scalar()
	if err != nil {
		return Field{}, err
	}
	switch v.kind {
	case valNumber:
		return Field{Name: name, Kind: KindNumber, Num: v.num}, nil
	case valString:
		if !d.validUTF8(v.str) {
			return Field{}, invalidUTF8(d.at.String()+" value", v.str)
		}
		return Field{Name: name, Kind: KindString, Str: v.str}, nil
	case valBool:
		return Field{Name: name, Kind: KindBool, Num: v.num}, nil
	}
	return Field{}, &DecodeError{ReasonWrongType, d.at.String() + " has unsupported type " + v.kind.String()}
}

func (d *Decoder) wrongType(want string, got valKind) *DecodeError {
	return &DecodeError{ReasonWrongType, d.at.String() + " " + want + ", got " + got.String()}
}

// valKind is the JSON type of a value found where a scalar was expected.
type valKind uint8

const (
	valNumber valKind = iota + 1
	valString
	valBool
	valNull
	valArray
	valObject
)

func (k valKind) String() string {
	switch k {
	case valNumber:
		return "number"
	case valString:
		return "string"
	case valBool:
		return "boolean"
	case valNull:
		return "null"
	case valArray:
		return "array"
	case valObject:
		return "object"
	}
	return "invalid"
}

// value is a decoded scalar; containers are only classified, not consumed,
// because every known field rejects them.
type value struct {
	kind valKind
	num  float64 // valNumber; valBool as 1 or 0
	str  []byte  // valString
}

// scalar decodes the value at the current position, recognising the bare
// NaN/Infinity tokens some producers emit so the error names the field.
func (d *Decoder) scalar() (value, *DecodeError) {
	if d.pos >= len(d.data) {
		return value{}, d.syntaxErr(d.pos, "unexpected end of input")
	}
	switch c := d.data[d.pos]; c {
	case '"':
		s, err := d.readString()
		return value{kind: valString, str: s}, err
	case 't':
		return value{kind: valBool, num: 1}, d.literal("true")
	case 'f':
		return value{kind: valBool}, d.literal("false")
	case 'n':
		return value{kind: valNull}, d.literal("null")
	case '[':
		return value{kind: valArray}, nil
	case '{':
		return value{kind: valObject}, nil
	default:
		if c == '-' || isDigit(c) {
			n, err := d.readNumber()
			return value{kind: valNumber, num: n}, err
		}
		if err := d.nonFiniteToken("is"); err != nil {
			return value{}, err
		}
		return value{}, d.syntaxErr(d.pos, "unexpected "+describeByte(c))
	}
}

// nonFiniteToken reports ReasonNonFinite if a NaN/Infinity token starts at
// the current position, and nil otherwise.
func (d *Decoder) nonFiniteToken(verb string) *DecodeError {
	rest := d.data[d.pos:]
	for _, tok := range [...]string{"NaN", "Infinity", "-Infinity"} {
		if hasPrefix(rest, tok) {
			return &DecodeError{ReasonNonFinite, d.at.String() + " " + verb + " " + tok}
		}
	}
	return nil
}

func (d *Decoder) literal(lit string) *DecodeError {
	if !hasPrefix(d.data[d.pos:], lit) {
		return d.syntaxErr(d.pos, "invalid literal, expected "+lit)
	}
	d.pos += len(lit)
	return nil
}

// readNumber validates and parses the number at the current position.
func (d *Decoder) readNumber() (float64, *DecodeError) {
	if d.data[d.pos] == '-' { // only "-Infinity" can hide behind a sign
		if err := d.nonFiniteToken("is"); err != nil {
			return 0, err
		}
	}
	start := d.pos
	if err := d.scanNumber(); err != nil {
		return 0, err
	}
	// The grammar is already checked, so only overflow can fail (to ±Inf).
	n, _ := parseFloat(d.data[start:d.pos])
	if math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, &DecodeError{ReasonNonFinite, d.at.String() + " overflows float64"}
	}
	return n, nil
}

// scanNumber advances over a number, enforcing the exact JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *Decoder) scanNumber() *DecodeError {
	data, i := d.data, d.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return d.syntaxErr(i, "unexpected end of input in number")
	case data[i] == '0':
		i++
		if i < len(data) && isDigit(data[i]) {
			return d.syntaxErr(i-1, "leading zero in number")
		}
	case isDigit(data[i]):
		i = skipDigits(data, i)
	default:
		return d.syntaxErr(i, "expected digit in number, found "+describeByte(data[i]))
	}
	if i < len(data) && data[i] == '.' {
		var err *DecodeError
		if i, err = d.requireDigits(i + 1); err != nil {
			return err
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		var err *DecodeError
		if i, err = d.requireDigits(i); err != nil {
			return err
		}
	}
	d.pos = i
	return nil
}

func (d *Decoder) requireDigits(i int) (int, *DecodeError) {
	if i >= len(d.data) {
		return i, d.syntaxErr(i, "unexpected end of input in number")
	}
	if !isDigit(d.data[i]) {
		return i, d.syntaxErr(i, "expected digit in number, found "+describeByte(d.data[i]))
	}
	return skipDigits(d.data, i), nil
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && isDigit(data[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// readString reads the string starting at the '"' under the cursor. Strings
// without escapes alias the input; escaped ones are unescaped into scratch.
func (d *Decoder) readString() ([]byte, *DecodeError) {
	start := d.pos + 1
	var bits byte // OR of the bytes: ASCII strings need no UTF-8 check
	for i := start; i < len(d.data); i++ {
		c := d.data[i]
		bits |= c
		switch {
		case c == '"':
			d.pos = i + 1
			d.ascii = bits < utf8.RuneSelf
			return d.data[start:i:i], nil
		case c == '\\':
			d.ascii = false // unescape may copy multi-byte sequences: check it
			return d.unescape(start, i)
		case c < 0x20:
			return nil, d.syntaxErr(i, "control character in string")
		}
	}
	return nil, d.syntaxErr(len(d.data), "unexpected end of input in string")
}

// unescape decodes the string that starts at start and has its first escape
// at esc. Unescaping never lengthens a string, so sizing scratch to the whole
// input once per call means appends never reallocate: slices handed out
// earlier in this call stay in the same backing array, and steady state
// needs no allocation at all.
func (d *Decoder) unescape(start, esc int) ([]byte, *DecodeError) {
	if cap(d.scratch) < len(d.data) {
		// Only reachable before anything was written in this call, because
		// afterwards cap(d.scratch) >= len(d.data).
		d.scratch = make([]byte, 0, len(d.data))
	}
	off := len(d.scratch)
	out := append(d.scratch, d.data[start:esc]...)
	i := esc
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.scratch = out
			d.pos = i + 1
			return out[off:len(out):len(out)], nil
		case c < 0x20:
			return nil, d.syntaxErr(i, "control character in string")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		var err *DecodeError
		if out, i, err = d.escape(out, i); err != nil {
			return nil, err
		}
	}
	return nil, d.syntaxErr(len(d.data), "unexpected end of input in string")
}

// escape appends the character of the escape sequence at data[i] ('\\') to
// out and returns the index after the sequence.
func (d *Decoder) escape(out []byte, i int) ([]byte, int, *DecodeError) {
	if i+1 >= len(d.data) {
		return out, i, d.syntaxErr(len(d.data), "unexpected end of input in string")
	}
	switch c := d.data[i+1]; c {
	case '"', '\\', '/':
		return append(out, c), i + 2, nil
	case 'b':
		return append(out, '\b'), i + 2, nil
	case 'f':
		return append(out, '\f'), i + 2, nil
	case 'n':
		return append(out, '\n'), i + 2, nil
	case 'r':
		return append(out, '\r'), i + 2, nil
	case 't':
		return append(out, '\t'), i + 2, nil
	case 'u':
		r, err := d.hex4(i + 2)
		if err != nil {
			return out, i, err
		}
		i += 6
		if utf16IsHighSurrogate(r) {
			// A following \uDC00-\uDFFF completes the pair; otherwise the
			// high surrogate is lone and the next escape is decoded on its own.
			if lo, ok := d.lowSurrogate(i); ok {
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				i += 6
			}
		}
		// AppendRune writes U+FFFD for any surrogate left unpaired.
		return utf8.AppendRune(out, r), i, nil
	}
	return out, i, d.syntaxErr(i+1, "invalid escape "+describeByte(d.data[i+1]))
}

func utf16IsHighSurrogate(r rune) bool { return 0xD800 <= r && r < 0xDC00 }

// lowSurrogate reports the low surrogate escaped at data[i:], if any.
func (d *Decoder) lowSurrogate(i int) (rune, bool) {
	if i+6 > len(d.data) || d.data[i] != '\\' || d.data[i+1] != 'u' {
		return 0, false
	}
	r, ok := parseHex4(d.data[i+2 : i+6])
	if !ok || r < 0xDC00 || r > 0xDFFF {
		return 0, false
	}
	return r, true
}

func (d *Decoder) hex4(i int) (rune, *DecodeError) {
	if i+4 > len(d.data) {
		return 0, d.syntaxErr(len(d.data), "unexpected end of input in \\u escape")
	}
	r, ok := parseHex4(d.data[i : i+4])
	if !ok {
		return 0, d.syntaxErr(i, "invalid \\u escape")
	}
	return r, nil
}

func parseHex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipString advances over a string without unescaping it, validating its
// escapes and rejecting control characters as readString does.
func (d *Decoder) skipString() *DecodeError {
	for i := d.pos + 1; i < len(d.data); {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			return nil
		case c < 0x20:
			return d.syntaxErr(i, "control character in string")
		case c == '\\':
			if i+1 >= len(d.data) {
				return d.syntaxErr(len(d.data), "unexpected end of input in string")
			}
			switch d.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, err := d.hex4(i + 2); err != nil {
					return err
				}
				i += 6
			default:
				return d.syntaxErr(i+1, "invalid escape "+describeByte(d.data[i+1]))
			}
		default:
			i++
		}
	}
	return d.syntaxErr(len(d.data), "unexpected end of input in string")
}

// skipValue validates and skips the value of an unknown key. It is iterative
// so that hostile nesting costs a byte of stack per level, not a goroutine
// stack frame, and it enforces MaxDepth.
func (d *Decoder) skipValue() *DecodeError {
	maxDepth := orDefault(d.cfg.MaxDepth, DefaultMaxDepth)
	d.stack = d.stack[:0]
	for {
		due, err := d.skipOne(maxDepth)
		if err != nil {
			return err
		}
		if due {
			continue
		}
		if err := d.closeContainers(); err != nil || len(d.stack) == 0 {
			return err
		}
	}
}

// skipOne skips a scalar, or opens a container. due reports that the
// container is non-empty and the cursor is at its first value; an empty
// container is left open for closeContainers to close.
func (d *Decoder) skipOne(maxDepth int) (due bool, err *DecodeError) {
	if d.pos >= len(d.data) {
		return false, d.syntaxErr(d.pos, "unexpected end of input")
	}
	switch c := d.data[d.pos]; c {
	case '{', '[':
		// The event object is depth 1, so this container is depth len+2.
		if len(d.stack)+2 > maxDepth {
			return false, d.syntaxErr(d.pos, "nesting deeper than "+strconv.Itoa(maxDepth))
		}
		d.stack = append(d.stack, c)
		d.pos++
		d.skipWS()
		if d.pos < len(d.data) && (d.data[d.pos] == '}' || d.data[d.pos] == ']') {
			return false, nil // closeContainers checks the bracket matches
		}
		if c == '{' {
			return true, d.skipKey()
		}
		return true, nil
	case '"':
		return false, d.skipString()
	case 't':
		return false, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return false, d.literal("null")
	}
	if isDigit(d.data[d.pos]) {
		return false, d.scanNumber()
	}
	verb := "is"
	if len(d.stack) > 0 {
		verb = "contains"
	}
	if err := d.nonFiniteToken(verb); err != nil {
		return false, err
	}
	if d.data[d.pos] == '-' {
		return false, d.scanNumber()
	}
	return false, d.syntaxErr(d.pos, "unexpected "+describeByte(d.data[d.pos]))
}

// skipKey skips `"name" :` inside a skipped object.
func (d *Decoder) skipKey() *DecodeError {
	if d.pos >= len(d.data) {
		return d.syntaxErr(d.pos, "unexpected end of input")
	}
	if d.data[d.pos] != '"' {
		return d.syntaxErr(d.pos, "expected string key, found "+describeByte(d.data[d.pos]))
	}
	if err := d.skipString(); err != nil {
		return err
	}
	d.skipWS()
	if err := d.expect(':', "expected ':'"); err != nil {
		return err
	}
	d.skipWS()
	return nil
}

// closeContainers consumes the separators and closing brackets after a
// skipped value, stopping when another value is due or nothing is open.
func (d *Decoder) closeContainers() *DecodeError {
	for len(d.stack) > 0 {
		d.skipWS()
		if d.pos >= len(d.data) {
			return d.syntaxErr(d.pos, "unexpected end of input")
		}
		open := d.stack[len(d.stack)-1]
		closer := byte('}')
		if open == '[' {
			closer = ']'
		}
		switch c := d.data[d.pos]; c {
		case closer:
			d.pos++
			d.stack = d.stack[:len(d.stack)-1]
		case ',':
			d.pos++
			d.skipWS()
			if open == '{' {
				return d.skipKey()
			}
			return nil
		default:
			return d.syntaxErr(d.pos, "expected ',' or '"+string(closer)+"', found "+describeByte(c))
		}
	}
	return nil
}

func (d *Decoder) skipWS() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *Decoder) expect(c byte, msg string) *DecodeError {
	if d.pos >= len(d.data) {
		return d.syntaxErr(d.pos, "unexpected end of input")
	}
	if d.data[d.pos] != c {
		return d.syntaxErr(d.pos, msg+", found "+describeByte(d.data[d.pos]))
	}
	d.pos++
	return nil
}

func (d *Decoder) syntaxErr(pos int, msg string) *DecodeError {
	detail := "invalid JSON at byte " + strconv.Itoa(pos)
	if d.at.kind != atNone {
		detail += " (" + d.at.String() + ")"
	}
	return &DecodeError{ReasonInvalidJSON, detail + ": " + msg}
}

// where names the part of the event being parsed so that error details can
// point at the offending field.
type where struct {
	kind  uint8
	known string // atKnown: the key, a constant
	name  []byte // atUnknown, atFeature: aliases the input or scratch
}

const (
	atNone    = iota
	atKnown   // a known top-level field: id, key, ts, features, label
	atUnknown // an unknown top-level field
	atFeature // a feature inside "features"
)

// String describes the location with copied bytes, so the result may
// outlive the Decode call.
func (w where) String() string {
	switch w.kind {
	case atKnown:
		return w.known
	case atUnknown:
		return "field " + quote(w.name)
	case atFeature:
		return "feature " + quote(w.name)
	}
	return "event"
}

// maxQuoted bounds names copied into error details so a hostile message
// cannot make its error message huge.
const maxQuoted = 64

// quote returns b as a quoted Go string, truncated to maxQuoted bytes.
func quote(b []byte) string {
	if len(b) > maxQuoted {
		return strconv.Quote(string(b[:maxQuoted])) + "..."
	}
	return strconv.Quote(string(b))
}

func describeByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// hasPrefix is bytes.HasPrefix for a string prefix, without converting it.
func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// unsafeString views b as a string without copying. Callers must not let the
// string outlive b's current contents.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// nameSet detects duplicate feature names in O(1) per name with an
// open-addressing table of indexes into Event.Fields. Slots are invalidated
// by bumping a generation instead of clearing, so reset is O(1) even after
// the table grew for a large event.
type nameSet struct {
	seed   maphash.Seed // random per Decoder so names cannot be chosen to collide
	seeded bool
	gen    uint32
	slots  []nameSlot
}

type nameSlot struct {
	gen  uint32 // slot is in use iff gen == nameSet.gen
	hash uint32 // low hash bits, to skip most byte comparisons
	idx  uint32 // index into the fields slice
}

func (s *nameSet) reset() {
	if !s.seeded {
		s.seed, s.seeded = maphash.MakeSeed(), true
	}
	s.gen++
	if s.gen == 0 { // wrapped: stale slots could now look current
		clear(s.slots)
		s.gen = 1
	}
}

// insert records name as the name of fields[len(fields)] and reports whether
// it already occurs in fields.
func (s *nameSet) insert(fields []Field, name []byte) (dup bool) {
	if 2*(len(fields)+1) > len(s.slots) {
		s.grow(fields)
	}
	return s.put(fields, name, uint32(len(fields)))
}

func (s *nameSet) put(fields []Field, name []byte, idx uint32) bool {
	h := maphash.Bytes(s.seed, name)
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.gen != s.gen {
			*sl = nameSlot{gen: s.gen, hash: uint32(h), idx: idx}
			return false
		}
		if sl.hash == uint32(h) && bytes.Equal(fields[sl.idx].Name, name) {
			return true
		}
	}
}

// grow doubles the table (keeping the load factor at most 1/2, so probing
// always finds a free slot) and re-inserts the names already in fields.
func (s *nameSet) grow(fields []Field) {
	n := max(16, len(s.slots))
	for n < 2*(len(fields)+1) {
		n *= 2
	}
	if n == len(s.slots) {
		return
	}
	s.slots = make([]nameSlot, n) // generation 0 is never current
	for i := range fields {
		s.put(fields, fields[i].Name, uint32(i))
	}
}
