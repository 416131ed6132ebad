package features

import "testing"

// BenchmarkTraceTransform is Transform with tracing off (serving's and a
// model's vector without bucket names: one branch per entry) against on
// (explanations, and a model's learning vector while it keeps bucket
// names: two appends more per entry), in one run:
//
//	go test ./features -run '^$' -bench TraceTransform -benchtime 1000000x -benchmem -count 3
func BenchmarkTraceTransform(b *testing.B) {
	for _, n := range []int{8, 80} {
		tr := New(Config{})
		fs := benchFields(n)
		_ = tr.Update(fs)
		for _, trace := range []bool{false, true} {
			name := sizeName(n) + "/trace off"
			if trace {
				name = sizeName(n) + "/trace on"
			}
			b.Run(name, func(b *testing.B) {
				var v Vector
				if trace {
					v.Trace()
				}
				tr.Transform(fs, &v) // the vector's buffers grown
				b.ReportAllocs()
				for b.Loop() {
					tr.Transform(fs, &v)
				}
			})
		}
	}
}
