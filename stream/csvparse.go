package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"io"
	"math/bits"
)

// csvRecords reads CSV records by encoding/csv's rules as CSVReader uses
// them (comma ',', no comment lines, strict quotes, \r\n read as \n,
// empty lines skipped, every record as many fields as the first) and
// reports the same *csv.ParseError values, but allocates nothing per
// record: a record without quotes is split where it lies in the bufio
// buffer, a quoted one is unquoted into a reused buffer. The fields of a
// record are valid until the next read. TestCSVRecordsReadAsEncodingCSV
// compares the two on random input.
type csvRecords struct {
	r       *bufio.Reader
	numLine int    // lines read so far
	raw     []byte // a line longer than the bufio buffer
	rec     []byte // a quoted record, unquoted
	ends    []int  // where each field of rec ends
	fields  [][]byte
	want    int  // fields per record: the first record's count (0 before it)
	ascii   bool // the last record is all ASCII (so its fields are valid UTF-8)
}

func newCSVRecords(r io.Reader) *csvRecords {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<16)
	}
	return &csvRecords{r: br}
}

// readLine reads a line as encoding/csv does: with its \n (\r\n becomes
// \n), without one at the end of input; an error only with no bytes.
func (c *csvRecords) readLine() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.raw = append(c.raw[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = c.r.ReadSlice('\n')
			c.raw = append(c.raw, line...)
		}
		line = c.raw
	}
	if n := len(line); n > 0 && err == io.EOF {
		err = nil
		if line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	c.numLine++
	if n := len(line); n >= 2 && line[n-2] == '\r' && line[n-1] == '\n' {
		line[n-2] = '\n'
		line = line[:n-1]
	}
	return line, err
}

// isASCII reports whether b is all ASCII, eight bytes at a time.
func isASCII(b []byte) bool {
	var or uint64
	for len(b) >= 8 {
		or |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		or |= uint64(c)
	}
	return or&0x8080808080808080 == 0
}

// lengthNL is 1 if b ends with \n, else 0.
func lengthNL(b []byte) int {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		return 1
	}
	return 0
}

// read returns the next record and the line it starts on. Its errors are
// io.EOF after the last record, a *csv.ParseError (a wrong field count
// returns the record too), or the input's.
func (c *csvRecords) read() ([][]byte, int, error) {
	var line []byte
	var errRead error
	for errRead == nil {
		line, errRead = c.readLine()
		if errRead == nil && len(line) == lengthNL(line) {
			continue // an empty line
		}
		break
	}
	if errRead == io.EOF {
		return nil, 0, io.EOF
	}
	recLine := c.numLine
	c.fields = c.fields[:0]
	var err error
	if !c.split(line[:len(line)-lengthNL(line)]) {
		err = c.readQuoted(line, errRead, recLine)
		errRead = nil
		c.ascii = isASCII(c.rec)
	}
	if err == nil {
		err = errRead
	}
	if c.want > 0 {
		if len(c.fields) != c.want && err == nil {
			err = &csv.ParseError{StartLine: recLine, Line: recLine, Column: 1, Err: csv.ErrFieldCount}
		}
	} else {
		c.want = len(c.fields)
	}
	return c.fields, recLine, err
}

// split splits a line without quotes at its commas, in one pass that also
// tells whether it is all ASCII, eight bytes at a time. It returns false,
// having split nothing, if the line has a quote.
func (c *csvRecords) split(line []byte) bool {
	const (
		ones    = 0x0101010101010101
		commas  = ',' * ones
		quotes  = '"' * ones
		highBit = 0x8080808080808080
	)
	var or uint64
	start, i := 0, 0
	for ; i+8 <= len(line); i += 8 {
		w := binary.LittleEndian.Uint64(line[i:])
		or |= w
		if zeroBytes(w^quotes) != 0 {
			c.fields = c.fields[:0]
			return false
		}
		for m := zeroBytes(w ^ commas); m != 0; m &= m - 1 {
			j := i + bits.TrailingZeros64(m)>>3
			c.fields = append(c.fields, line[start:j:j])
			start = j + 1
		}
	}
	for ; i < len(line); i++ {
		b := line[i]
		or |= uint64(b)
		switch b {
		case ',':
			c.fields = append(c.fields, line[start:i:i])
			start = i + 1
		case '"':
			c.fields = c.fields[:0]
			return false
		}
	}
	c.fields = append(c.fields, line[start:len(line):len(line)])
	c.ascii = or&highBit == 0
	return true
}

// zeroBytes has the high bit of each byte of w that is zero set, and no
// other bit (no carry crosses bytes: (b&0x7f)+0x7f is at most 0xfe).
func zeroBytes(w uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	return ^((w&low7 + low7) | w) & 0x8080808080808080
}

// readQuoted parses a record with a quote in its first line, reading more
// lines while a quoted field goes on, into c.rec and c.fields: the
// algorithm of encoding/csv's readRecord.
func (c *csvRecords) readQuoted(line []byte, errRead error, recLine int) error {
	c.rec, c.ends = c.rec[:0], c.ends[:0]
	col, lineNo := 1, c.numLine
	var err error
parseField:
	for {
		if len(line) == 0 || line[0] != '"' {
			i := bytes.IndexByte(line, ',')
			field := line
			if i >= 0 {
				field = field[:i]
			} else {
				field = field[:len(field)-lengthNL(field)]
			}
			if j := bytes.IndexByte(field, '"'); j >= 0 {
				err = &csv.ParseError{StartLine: recLine, Line: c.numLine, Column: col + j, Err: csv.ErrBareQuote}
				break parseField
			}
			c.rec = append(c.rec, field...)
			c.ends = append(c.ends, len(c.rec))
			if i >= 0 {
				line = line[i+1:]
				col += i + 1
				continue parseField
			}
			break parseField
		}
		line = line[1:]
		col++
		for {
			i := bytes.IndexByte(line, '"')
			switch {
			case i >= 0:
				c.rec = append(c.rec, line[:i]...)
				line = line[i+1:]
				col += i + 1
				switch {
				case len(line) > 0 && line[0] == '"': // "" is a quote
					c.rec = append(c.rec, '"')
					line = line[1:]
					col++
				case len(line) > 0 && line[0] == ',': // ", ends the field
					line = line[1:]
					col++
					c.ends = append(c.ends, len(c.rec))
					continue parseField
				case lengthNL(line) == len(line): // "\n ends the record
					c.ends = append(c.ends, len(c.rec))
					break parseField
				default:
					err = &csv.ParseError{StartLine: recLine, Line: c.numLine, Column: col - 1, Err: csv.ErrQuote}
					break parseField
				}
			case len(line) > 0: // the field goes on on the next line
				c.rec = append(c.rec, line...)
				if errRead != nil {
					break parseField
				}
				col += len(line)
				line, errRead = c.readLine()
				if len(line) > 0 {
					lineNo++
					col = 1
				}
				if errRead == io.EOF {
					errRead = nil
				}
			default: // the input ends inside quotes
				if errRead == nil {
					err = &csv.ParseError{StartLine: recLine, Line: lineNo, Column: col, Err: csv.ErrQuote}
					break parseField
				}
				c.ends = append(c.ends, len(c.rec))
				break parseField
			}
		}
	}
	if err == nil {
		err = errRead
	}
	start := 0
	for _, end := range c.ends {
		c.fields = append(c.fields, c.rec[start:end:end])
		start = end
	}
	return err
}
