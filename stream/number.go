package stream

import (
	"bytes"
	"strconv"
)

// parseFloat reads b as strconv.ParseFloat(b, 64) does, to the same bits,
// faster for the common form of data files and JSON: an optional sign,
// digits and an optional fraction, no exponent, whose digits make an
// integer up to 2^53. Such a number is that integer divided by a power of
// ten up to 10^22, both exact in a float64, so one IEEE division rounds it
// correctly (the "exact" fast path of strconv itself). Anything else goes to strconv.
// ok is false where ParseFloat fails; x is then what ParseFloat returns
// (±Inf for a number beyond float64, else 0). Only the ParseFloat path can
// allocate (for its error).
func parseFloat(b []byte) (x float64, ok bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, i = b[0] == '-', 1
	}
	start := i
	var mant uint64
	for ; i < len(b); i++ {
		d := b[i] - '0'
		if d > 9 {
			break
		}
		mant = mant*10 + uint64(d)
	}
	digits, frac := i-start, 0
	if i < len(b) && b[i] == '.' {
		i++
		from := i
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				break
			}
			mant = mant*10 + uint64(d)
		}
		frac = i - from
		digits += frac
	}
	// Everything read, at least one digit, no overflow of mant (19 digits
	// at most), mant exact in a float64 and 10^frac too.
	if i != len(b) || digits == 0 || digits > 19 || mant > 1<<53 || frac > 22 {
		return slowParseFloat(b)
	}
	x = float64(mant)
	if frac > 0 {
		x /= pow10[frac]
	}
	if neg {
		x = -x
	}
	return x, true
}

// slowParseFloat is strconv.ParseFloat, which clones the string into its
// errors: the unsafe string does not outlive the call. Text without a
// digit is a number only as [+-]inf, [+-]infinity or nan in any case;
// anything else is refused here, sparing the error ParseFloat would
// allocate for every category that starts like one ("NSW", "index").
func slowParseFloat(b []byte) (float64, bool) {
	if !bytes.ContainsAny(b, "0123456789") {
		word := b
		if len(word) > 0 && (word[0] == '+' || word[0] == '-') {
			word = word[1:]
		}
		switch {
		case asciiEqualFold(word, "inf"), asciiEqualFold(word, "infinity"):
		case asciiEqualFold(b, "nan"):
		default:
			return 0, false
		}
	}
	x, err := strconv.ParseFloat(unsafeString(b), 64)
	return x, err == nil
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
