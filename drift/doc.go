// Package drift detects concept drift in a stream of numbers, typically a
// model's prequential error: ADWIN, Page-Hinkley and friends, as pure
// detectors with an Update(x float64) bool style API that match River's
// published behaviour.
//
// This package is a leaf: standard library, gonum and eddy's binary codec
// (features/codec, itself standard library only), no I/O.
//
// # Detectors
//
//   - ADWIN (adaptive windowing) for any stream of numbers, typically 0/1
//     errors or losses in [0, 1];
//   - PageHinkley for shifts of the mean, up, down or both;
//   - DDM and EDDM for streams of prediction outcomes (0: correct, otherwise
//     an error), with a warning zone;
//   - KSWIN, a Kolmogorov–Smirnov test between recent and older values.
//
// Each has a config struct whose zero value means River's defaults (a zero
// field takes that field's default), with EnsureDefaults and Validate, and a
// constructor (NewADWIN, ...). New builds any of them by kind and by River's
// parameter names, for configuration files and the command line.
//
// # Invariants
//
// ADWIN, Page-Hinkley, DDM and EDDM detect at exactly the values River's
// do: they perform River's floating-point operations in River's order, so
// their state matches bit for bit (ADWIN's δ' = ln(2·ln W/δ) uses Go's
// math.Log, which may differ from the C library's log in the last place; that
// could only decide a cut that ties to the last bit). KSWIN follows River's
// algorithm but draws its sample with its own seeded generator, so it does
// not reproduce River's detections one for one (see KSWIN).
//
// As River's, a detector resets itself after a detection: Update returns
// true and Drift reports it until the next Update, which first resets the
// detector and then takes its value.
//
// Update ignores NaN, ±Inf and values beyond ±MaxValue: it returns false and
// leaves the detector as it was, so no input makes its state non-finite.
//
// Update allocates nothing (ADWIN preallocates its bucket rows for windows
// of up to 84 million values, beyond which a new row is allocated each time
// the window doubles).
//
// Every detector has AppendState(dst []byte) []byte (part of the Detector
// interface), which appends its configuration and state in a versioned
// binary format written with package codec, and Decode restores
// any of them: a restored detector continues with exactly the detections the
// original would have made. Decode returns an error, never panics, on
// truncated or corrupt input.
//
// # Concurrency
//
// A detector is owned by one goroutine (the one that owns its model); none is
// safe for concurrent use. The package has no global state.
package drift
