package eddy

import (
	"net"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eddyhq/eddy/learner/engine"
)

// What the external tests (package eddy_test) may reach beyond the public
// API: the little that has no public view yet.

// Engine returns the service's engine, for the drift test's detections and
// snapshot list. Its thread-safe methods only.
func (s *Service) Engine() *engine.Engine { return s.engine }

// WrapMetricsListener replaces the metrics listener by wrap's, before Run,
// so that a test can watch the connections the server keeps.
func (s *Service) WrapMetricsListener(wrap func(net.Listener) net.Listener) {
	s.httpLis = wrap(s.httpLis)
}

// WithStoreFS returns cfg with Pebble on fs, through which a test injects
// I/O errors (Pebble's vfs/errorfs).
func WithStoreFS(cfg Config, fs vfs.FS) Config {
	cfg.storeFS = fs
	return cfg
}
