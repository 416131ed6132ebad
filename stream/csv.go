package stream

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// CSVConfig says which columns of CSV input are not features. The zero
// value reads every named column as a feature and no label.
type CSVConfig struct {
	// Target is the column holding the label; "" for none (every event is
	// then unlabeled).
	Target string
	// Key is the column holding the entity key (Event.Key); "" for none.
	Key string
	// Ignore lists more columns that are not features.
	Ignore []string
	// Categorical lists columns whose cells are categories whatever they
	// look like: ids and zip codes that are digits stay categories.
	Categorical []string
}

// ErrCSVEmpty is returned by NewCSVReader for input without a header row.
var ErrCSVEmpty = errors.New("stream: CSV input is empty; want a header row naming the columns")

// CSVHeaderError is a header row that cannot name the columns: unreadable,
// a name that is not valid UTF-8, or a name that appears twice.
type CSVHeaderError struct {
	Reason string // e.g. `column "x" appears twice in the header`
	Err    error  // the CSV parser's error, if that was the cause
}

func (e *CSVHeaderError) Error() string { return "stream: CSV header: " + e.Reason }
func (e *CSVHeaderError) Unwrap() error { return e.Err }

// CSVColumnError is a column named in the CSVConfig that the header lacks.
type CSVColumnError struct {
	Role   string   // the CSVConfig field that names it: "Target", "Key", "Ignore" or "Categorical"
	Column string   // the name given
	Header []string // the columns there are
}

func (e *CSVColumnError) Error() string {
	return fmt.Sprintf("stream: no column %q for %s (columns: %s)", e.Column, e.Role, strings.Join(e.Header, ", "))
}

// CSVRowError is a row that cannot be an event. The CSVReader can go on
// with the next row.
type CSVRowError struct {
	Line   int    // the line of the input the problem is on (the header is line 1)
	Reason string // e.g. `label "maybe" in column "label" is not a number or boolean`
}

func (e *CSVRowError) Error() string { return fmt.Sprintf("stream: CSV line %d: %s", e.Line, e.Reason) }

// CSVReader reads CSV input as events, one per row, by the rules eddy's
// commands share (produce sends the events, evaluate learns them):
//
//   - The first row names the columns. Names must be valid UTF-8 and
//     unique. Columns without a name (such as a pandas index) are never a
//     feature nor the label: they are left out (see Unnamed).
//   - The Target column, if any, is the label: true and false in any case
//     are 1 and 0, otherwise a finite number; an empty cell is no label.
//   - The Key column, if any, is the entity key.
//   - Every other column not in Ignore is a feature. A non-empty cell is a
//     number if strconv.ParseFloat reads it as a finite one, a boolean if it
//     is true or false in any case, and otherwise a category; a cell of a
//     Categorical column is always a category; an empty cell is left out.
//     Feature cells must be valid UTF-8.
//
// A CSVReader is not safe for concurrent use.
type CSVReader struct {
	csv     *csvRecords
	header  []string
	names   [][]byte // the header's names, converted once
	skip    []bool   // per column: not a feature (unnamed, target, key or ignored)
	cat     []bool   // per column: always a category (CSVConfig.Categorical)
	unnamed []int
	target  int // column index; -1 for none
	key     int
	line    int // line of the row last read
	row     int // records read, valid or not

	keyBuf []byte
}

// NewCSVReader reads the header row of r and returns a reader of the rows
// after it. Its errors are ErrCSVEmpty, a *CSVHeaderError, a
// *CSVColumnError, or the error of reading r.
func NewCSVReader(r io.Reader, cfg CSVConfig) (*CSVReader, error) {
	cr := newCSVRecords(r)
	fields, _, err := cr.read()
	header := make([]string, len(fields))
	for i, f := range fields {
		header[i] = string(f)
	}
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return nil, ErrCSVEmpty
	case errors.As(err, &pe):
		return nil, &CSVHeaderError{Reason: "reading the header: " + err.Error(), Err: err}
	case err != nil:
		return nil, fmt.Errorf("stream: reading the CSV header: %w", err)
	}
	c := &CSVReader{csv: cr, header: header, target: -1, key: -1}
	c.names = make([][]byte, len(c.header))
	c.skip = make([]bool, len(c.header))
	for i, h := range c.header {
		switch {
		case !utf8.ValidString(h):
			return nil, &CSVHeaderError{Reason: fmt.Sprintf("the name of column %d is not valid UTF-8: %q", i+1, h)}
		case h == "":
			c.unnamed = append(c.unnamed, i)
			c.skip[i] = true
		case slices.Index(c.header, h) != i:
			return nil, &CSVHeaderError{Reason: fmt.Sprintf("column %q appears twice in the header", h)}
		}
		c.names[i] = []byte(h)
	}
	// Only a column the user named: "" is never looked up, so an unset
	// Target cannot match an unnamed column.
	if c.target, err = c.column("Target", cfg.Target); err != nil {
		return nil, err
	}
	if c.key, err = c.column("Key", cfg.Key); err != nil {
		return nil, err
	}
	if c.key >= 0 {
		c.keyBuf = make([]byte, 0, 32) // never nil: a key column gives every event a key
	}
	for _, name := range cfg.Ignore {
		i := slices.Index(c.header, name) // "" finds an unnamed column, left out already
		if i < 0 {
			return nil, &CSVColumnError{Role: "Ignore", Column: name, Header: c.header}
		}
		c.skip[i] = true
	}
	c.cat = make([]bool, len(c.header))
	for _, name := range cfg.Categorical {
		i := slices.Index(c.header, name)
		if i < 0 || name == "" {
			return nil, &CSVColumnError{Role: "Categorical", Column: name, Header: c.header}
		}
		c.cat[i] = true
	}
	return c, nil
}

// column finds the column of role named name, marks it as not a feature,
// and returns its index: -1 for name "".
func (c *CSVReader) column(role, name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	i := slices.Index(c.header, name)
	if i < 0 {
		return -1, &CSVColumnError{Role: role, Column: name, Header: c.header}
	}
	c.skip[i] = true
	return i, nil
}

// Header returns the column names. The caller must not modify it.
func (c *CSVReader) Header() []string { return c.header }

// Unnamed returns the indexes (from 0) of the columns without a name,
// which are left out. The caller must not modify it.
func (c *CSVReader) Unnamed() []int { return c.unnamed }

// Line returns the line of the input the row last read starts on, or its
// problem is on (the line of its *CSVRowError).
func (c *CSVReader) Line() int { return c.line }

// Row returns the number of rows read so far, valid or not, so that it
// numbers every row of the input whichever are valid.
func (c *CSVReader) Row() int { return c.row }

// Read reads the next row into ev, overwriting it and keeping the capacity
// of ev.Fields: its features in column order, its label (HasLabel false if
// the target cell is empty or there is no target), and its key (nil without
// a key column, empty for an empty cell). ID and Time are left zero.
//
// It returns io.EOF after the last row and a *CSVRowError for a row that is
// not an event (then ev is unspecified, and the next Read reads the next
// row); any other error is the input's. The slices in ev alias the
// CSVReader and are valid until the next Read.
func (c *CSVReader) Read(ev *Event) error {
	*ev = Event{Fields: ev.Fields[:0]}
	rec, line, err := c.csv.read()
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	c.row++
	if err != nil {
		return c.readError(rec, err)
	}
	c.line = line
	ev.Fields = slices.Grow(ev.Fields, len(rec))
	for i, cell := range rec {
		if c.skip[i] || len(cell) == 0 {
			continue
		}
		kind, num := KindString, 0.0
		if !c.cat[i] {
			kind, num = cellKind(cell)
		}
		var str []byte
		if kind == KindString { // numbers and booleans are ASCII
			if !c.csv.ascii && !utf8.Valid(cell) {
				return &CSVRowError{c.line, fmt.Sprintf("column %q is not valid UTF-8: %q", c.header[i], cell)}
			}
			str = cell // the record's bytes, valid until the next read
		}
		// Member by member: a Field built whole and copied in is written
		// twice, and its second copy stalls on the first.
		ev.Fields = ev.Fields[:len(ev.Fields)+1]
		f := &ev.Fields[len(ev.Fields)-1]
		f.Name, f.Kind, f.Num, f.Str = c.names[i], kind, num, str
	}
	if c.target >= 0 && len(rec[c.target]) > 0 {
		label, ok := parseLabel(rec[c.target])
		if !ok {
			return &CSVRowError{c.line, fmt.Sprintf("label %q in column %q is not a number or boolean", rec[c.target], c.header[c.target])}
		}
		ev.Label, ev.HasLabel = label, true
	}
	if c.key >= 0 {
		c.keyBuf = append(c.keyBuf[:0], rec[c.key]...)
		ev.Key = c.keyBuf
	}
	return nil
}

// readError turns an error of csv.Reader.Read into a *CSVRowError naming
// the line, unless the input itself failed.
func (c *CSVReader) readError(rec [][]byte, err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("stream: reading CSV: %w", err)
	}
	c.line = pe.Line
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return &CSVRowError{c.line, fmt.Sprintf("wrong number of fields: %d fields, but the header has %d", len(rec), len(c.header))}
	}
	return &CSVRowError{c.line, pe.Err.Error()}
}

// cellKind reads a non-empty cell: a finite number, true or false in any
// case, or else a category.
func cellKind(cell []byte) (FieldKind, float64) {
	switch {
	case asciiEqualFold(cell, "true"):
		return KindBool, 1
	case asciiEqualFold(cell, "false"):
		return KindBool, 0
	}
	// A number starts with a digit, sign, point, "inf" or "nan"; testing that
	// first spares a category the error ParseFloat would allocate.
	if numberStart[cell[0]] {
		if x, ok := parseFloat(cell); ok && finite(x) {
			return KindNumber, x
		}
	}
	return KindString, 0
}

// numberStart marks the bytes a number can start with.
var numberStart = func() (t [256]bool) {
	for _, c := range []byte("0123456789+-.iInN") {
		t[c] = true
	}
	return t
}()

// parseLabel reads a label cell: true and false (in any case) are 1 and 0;
// otherwise it must be a finite number.
func parseLabel(cell []byte) (float64, bool) {
	switch {
	case asciiEqualFold(cell, "true"):
		return 1, true
	case asciiEqualFold(cell, "false"):
		return 0, true
	}
	x, ok := parseFloat(cell)
	return x, ok && finite(x)
}

// asciiEqualFold reports whether s equals the lower-case ASCII word lower in
// any case, without allocating.
func asciiEqualFold(s []byte, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
