package drift

import (
	"fmt"

	"github.com/eddyhq/eddy/features/codec"
)

// The encoding of a detector's state starts with one byte: the kind in the
// high nibble, the format version in the low one. The configuration follows,
// then the state, in the order each detector's AppendState writes them, with
// the primitives of package codec: integers as uvarints, floats as 8
// little-endian bytes of their IEEE 754 bits (so a restored detector
// continues bit for bit), booleans as one byte.
const formatVersion = 1

// Kind codes of the header byte. They are part of the stored format: never
// renumber them.
const (
	codeADWIN       = 1
	codePageHinkley = 2
	codeDDM         = 3
	codeEDDM        = 4
	codeKSWIN       = 5
	codeShift       = 6
)

func header(code byte) byte { return code<<4 | formatVersion }

// Decode restores a detector from the start of data, as one of this
// package's AppendState methods wrote it, and returns the bytes after it.
// A restored detector continues exactly as the encoded one would have. An
// encoding that is truncated, corrupt or of an unknown version is an error
// wrapping ErrCorruptState; Decode never panics.
func Decode(data []byte) (Detector, []byte, error) {
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", ErrCorruptState)
	}
	code, version := data[0]>>4, data[0]&0x0f
	if version != formatVersion {
		return nil, nil, fmt.Errorf("%w: format version %d, want %d", ErrCorruptState, version, formatVersion)
	}
	r := codec.NewReader(data[1:], ErrCorruptState)
	var (
		d   Detector
		err error
	)
	switch code {
	case codeADWIN:
		d, err = decodeADWIN(&r)
	case codePageHinkley:
		d, err = decodePageHinkley(&r)
	case codeDDM:
		d, err = decodeDDM(&r)
	case codeEDDM:
		d, err = decodeEDDM(&r)
	case codeKSWIN:
		d, err = decodeKSWIN(&r)
	case codeShift:
		d, err = decodeShift(&r)
	default:
		return nil, nil, fmt.Errorf("%w: unknown detector code %d", ErrCorruptState, code)
	}
	if err == nil {
		err = r.Err()
	}
	if err != nil {
		return nil, nil, err
	}
	return d, r.Rest(), nil
}
