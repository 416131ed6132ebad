package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"

	"github.com/eddyhq/eddy"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

const exportUsage = `export --model NAME [--version V] -o FILE [flags]

Writes a stored snapshot of a model (by default the one serving) to FILE:
a self-describing, checksummed file holding the model's whole state
(weights, optimizer and scaler state), the configuration that took it and
its provenance. eddy evaluate --model-file FILE scores a CSV file with it,
offline and without learning, so that a served model can be checked. Ask
an instance that holds the model (its owner, or a standby); the Admin
role is needed when serve has an --auth-file.
` + adminConnection

// maxExportBytes bounds the export a client accepts.
const maxExportBytes = 1 << 30

func runExport(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "export", exportUsage)
	version := fs.Uint64("version", 0, "snapshot version (default: the one serving)")
	out := fs.String("o", "", "file to write (required)")
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	if *out == "" {
		fs.Usage()
		return errors.New("export: -o FILE is required")
	}
	var resp *eddyv1.ExportSnapshotResponse
	err := a.call(ctx, "export", func(ctx context.Context, c eddyv1.AdminClient) (err error) {
		resp, err = c.ExportSnapshot(ctx, &eddyv1.ExportSnapshotRequest{Model: a.model, Version: *version}, grpc.MaxCallRecvMsgSize(maxExportBytes))
		return err
	})
	if err != nil {
		return err
	}
	h, _, err := eddy.DecodeExport(resp.GetData())
	if err != nil {
		return fmt.Errorf("export: the server sent %w", err)
	}
	if err := os.WriteFile(*out, resp.GetData(), 0o600); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(env.stdout, "exported model %s version %d (%s, learned %d) to %s: %d bytes\n", h.Model, h.Version, h.Reason, h.Learned, *out, len(resp.GetData()))
	return nil
}
