package serving_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/serving"
)

func TestNewRefusesAnInvalidConfigNamingTheSetting(t *testing.T) {
	tests := []struct {
		name   string
		cfg    serving.Config
		models []string
		want   string
	}{
		{"negative MaxFeatures", serving.Config{MaxFeatures: -1}, []string{"m"}, "MaxFeatures"},
		{"negative MaxRequestBytes", serving.Config{MaxRequestBytes: -5}, []string{"m"}, "MaxRequestBytes"},
		{"negative ShutdownGrace", serving.Config{ShutdownGrace: -time.Second}, []string{"m"}, "ShutdownGrace is negative (-1s)"},
		{"negative MaxConnectionIdle", serving.Config{MaxConnectionIdle: -time.Minute}, []string{"m"}, "MaxConnectionIdle"},
		{"negative HandshakeTimeout", serving.Config{HandshakeTimeout: -time.Second}, []string{"m"}, "HandshakeTimeout"},
		{"an admin token ending in a line break", serving.Config{AdminToken: "s3cret\n"}, []string{"m"}, "AdminToken"},
		{"no models", serving.Config{}, nil, "no models"},
		{"an empty model name", serving.Config{}, []string{"m", ""}, "empty name"},
		{"a model named twice", serving.Config{}, []string{"m", "m"}, `"m" is named twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := serving.New(tt.cfg, tt.models, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if !errors.Is(err, serving.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = (%v, %v), want an error wrapping ErrInvalidConfig that mentions %q", srv, err, tt.want)
			}
		})
	}
}

func TestConfigZeroValueMeansTheDocumentedDefaults(t *testing.T) {
	var c serving.Config
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate of the defaults: %v", err)
	}
	want := serving.Config{
		MaxFeatures:       serving.DefaultMaxFeatures,
		MaxRequestBytes:   serving.DefaultMaxRequestBytes,
		ShutdownGrace:     serving.DefaultShutdownGrace,
		MaxConnectionIdle: serving.DefaultMaxConnectionIdle,
		HandshakeTimeout:  serving.DefaultHandshakeTimeout,
	}
	if c.MaxFeatures != want.MaxFeatures || c.MaxRequestBytes != want.MaxRequestBytes || c.ShutdownGrace != want.ShutdownGrace ||
		c.MaxConnectionIdle != want.MaxConnectionIdle || c.HandshakeTimeout != want.HandshakeTimeout {
		t.Fatalf("defaults = %+v, want %+v", c, want)
	}
}
