package stream

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// csvOutcomes reads input to the end with encoding/csv or with csvRecords
// and describes each record (its fields and first line) or error.
func csvOutcomes(input string, ours bool, bufSize int) []string {
	var out []string
	if ours {
		c := newCSVRecords(bufio.NewReaderSize(strings.NewReader(input), bufSize))
		for len(out) < 50 {
			rec, line, err := c.read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				out = append(out, "error "+err.Error())
				continue
			}
			out = append(out, fmt.Sprintf("line %d %q", line, rec))
		}
		return out
	}
	r := csv.NewReader(bufio.NewReaderSize(strings.NewReader(input), bufSize))
	for len(out) < 50 {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out = append(out, "error "+err.Error())
			continue
		}
		line, _ := r.FieldPos(0)
		fields := make([][]byte, len(rec))
		for i, f := range rec {
			fields[i] = []byte(f)
		}
		out = append(out, fmt.Sprintf("line %d %q", line, fields))
	}
	return out
}

func checkSameAsEncodingCSV(t *testing.T, input string, bufSize int) {
	t.Helper()
	want, got := csvOutcomes(input, false, bufSize), csvOutcomes(input, true, bufSize)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("input %q (buffer %d):\nencoding/csv:\n%s\ncsvRecords:\n%s", input, bufSize, strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

// TestCSVRecordsReadAsEncodingCSV reads random input made of the bytes
// that matter to CSV (commas, quotes, \r, \n) with csvRecords and with
// encoding/csv: the same records, lines and errors, also with lines
// longer than the buffer.
func TestCSVRecordsReadAsEncodingCSV(t *testing.T) {
	for _, input := range []string{
		"", "\n", "a", "a,b\n1,2\n", "a,b\r\n1,2\r\n", "a,b\n1,2", "a,b\n1,2\r",
		"a,\"b\nc\",d\n1,2,3\n", "\"a\"\"b\",c\n", "a\"b,c\n", "\"a\"b,c\n", "\"abc", "a,b\n\n\n1,2\n",
		"a,b\n1\n2,3\n", "\"\"\n", ",\n,\n", "\"a\r\nb\"\r\n",
	} {
		checkSameAsEncodingCSV(t, input, 16)
		checkSameAsEncodingCSV(t, input, 4096)
	}
	alphabet := []string{"a", "bc", ",", ",", "\"", "\"\"", "\n", "\r\n", "\r", " ", "é"}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		checkSameAsEncodingCSV(t, b.String(), 16+rng.IntN(48))
	}
}

func FuzzCSVRecordsReadAsEncodingCSV(f *testing.F) {
	f.Add("a,b\n\"1\n2\",3\n")
	f.Add("x,y\r\n\"a\"\"b\",c\r\n")
	f.Fuzz(func(t *testing.T, input string) { checkSameAsEncodingCSV(t, input, 16) })
}
