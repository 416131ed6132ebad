package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/eddyhq/eddy"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

const importUsage = `import FILE [--model NAME] [flags]

Seeds a model of a running service with an export file (eddy export wrote
it, here or on another eddy): the model's live state becomes the exported
snapshot's (weights, optimizer and scaler state, classes, metrics), a
snapshot of it serves at once (a pin is released) and the model goes on
learning from it. The model's lineage begins there: eddy snapshots shows
origin "import" with the file's model, version and sha256, and eddy audit
records who imported it. The file is checked before it is sent and again
by the server; the model (by default the one the file was exported from)
must be configured to learn alike: same task, loss, optimizer, features and
schema, or the import is refused naming the setting that differs. Ask the
instance that learns the model; the Admin role is needed when serve has an
--auth-file.
` + adminConnection

// importChunkBytes is the size of the messages the file is streamed in,
// well under serve's default --grpc-max-request-bytes.
const importChunkBytes = 64 << 10

func runImport(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "import", importUsage)
	fs.Lookup("model").Usage = "model to seed (default: the one the file was exported from)"
	file := fs.String("file", "", "the export file (or give it as the first argument)")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		*file, args = args[0], args[1:]
	}
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	if *file == "" {
		fs.Usage()
		return errors.New("import: give the export file: eddy import FILE")
	}
	data, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	h, _, err := eddy.DecodeExport(data)
	if err != nil {
		return fmt.Errorf("import: %s: %w", *file, err)
	}
	if a.model == "" {
		a.model = h.Model
	}
	var resp *eddyv1.ImportSnapshotResponse
	err = a.call(ctx, "import", func(ctx context.Context, c eddyv1.AdminClient) error {
		stream, err := c.ImportSnapshot(ctx)
		if err != nil {
			return err
		}
		for i := 0; i == 0 || i < len(data); i += importChunkBytes {
			req := &eddyv1.ImportSnapshotRequest{Chunk: data[i:min(i+importChunkBytes, len(data))]}
			if i == 0 {
				req.Model = a.model
			}
			if err := stream.Send(req); err != nil {
				break // the server ended the call: CloseAndRecv says why
			}
		}
		resp, err = stream.CloseAndRecv()
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "imported %s (model %s version %d, learned %d) into model %s: version %d serves\n",
		*file, h.Model, h.Version, h.Learned, resp.GetModel(), resp.GetVersion())
	return nil
}
