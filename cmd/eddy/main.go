// Command eddy is a streaming online-learning service: it learns models from
// Kafka events as they arrive and serves their predictions over gRPC. Run
// `eddy help` for the subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if err != errUsage {
			fmt.Fprintln(os.Stderr, "eddy:", err)
		}
		os.Exit(2)
	}
}
