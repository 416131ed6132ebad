package main

import (
	"math"
	"strconv"
	"strings"

	"github.com/eddyhq/eddy/features"
)

// How a CSV cell is read, by produce (which writes it as JSON) and evaluate
// (which learns from it) alike.

// cellKind reads a non-empty cell: a finite number, true or false in any
// case, or else a category.
func cellKind(cell string) (features.Kind, float64) {
	switch {
	case asciiEqualFold(cell, "true"):
		return features.Bool, 1
	case asciiEqualFold(cell, "false"):
		return features.Bool, 0
	}
	// A number starts with a digit, sign, point, "inf" or "nan"; testing that
	// first spares a category the error ParseFloat would allocate.
	if strings.IndexByte("0123456789+-.iInN", cell[0]) >= 0 {
		if x, err := strconv.ParseFloat(cell, 64); err == nil && !math.IsNaN(x) && !math.IsInf(x, 0) {
			return features.Number, x
		}
	}
	return features.String, 0
}

// parseLabel reads a label cell: true and false (in any case) are 1 and 0;
// otherwise it must be a finite number.
func parseLabel(cell string) (float64, bool) {
	switch {
	case asciiEqualFold(cell, "true"):
		return 1, true
	case asciiEqualFold(cell, "false"):
		return 0, true
	}
	x, err := strconv.ParseFloat(cell, 64)
	return x, err == nil && !math.IsNaN(x) && !math.IsInf(x, 0)
}

// asciiEqualFold reports whether s equals the lower-case ASCII word lower in
// any case. It agrees with strings.ToLower(s) == lower for the words used
// here, without allocating.
func asciiEqualFold(s, lower string) bool {
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

// appendCell writes a non-empty CSV cell as a JSON number, boolean or
// string, read by cellKind.
func appendCell(buf []byte, cell string) []byte {
	switch kind, x := cellKind(cell); kind {
	case features.Number:
		return strconv.AppendFloat(buf, x, 'g', -1, 64)
	case features.Bool:
		return strconv.AppendBool(buf, x == 1)
	}
	return appendJSONString(buf, cell)
}

// appendJSONString writes s, valid UTF-8, as a JSON string. (strconv.Quote
// is Go syntax: its \x01 and \v are not JSON.)
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', c)
		case c == '\n':
			buf = append(buf, '\\', 'n')
		case c == '\r':
			buf = append(buf, '\\', 'r')
		case c == '\t':
			buf = append(buf, '\\', 't')
		case c < 0x20:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			buf = append(buf, c)
		}
	}
	return append(buf, '"')
}
