package main

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/eddyhq/eddy/stream/devbroker"
)

const brokerUsage = `broker [flags]

Runs the embedded Kafka-protocol broker (kfake) on its own, in the
foreground, until interrupted: for development setups and for the crash
harness, which must kill eddy without killing its broker. With --data-dir the
broker keeps its topics and offsets across restarts. Not for production.
`

func runBroker(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "broker", brokerUsage)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address (host must be 127.0.0.1)")
	dataDir := fs.String("data-dir", "", "directory persisting the broker's data (empty: memory only)")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	port, err := loopbackPort("--addr", *addr)
	if err != nil {
		return err
	}
	b, err := devbroker.Start(devbroker.Config{Port: port, DataDir: *dataDir})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "broker listening on %s\n", b.Addr())
	<-ctx.Done()
	b.Close()
	return nil
}

// loopbackPort returns the port of addr, which must be 127.0.0.1:PORT with
// PORT a number (0: any free port). flag names the setting in the error.
func loopbackPort(flag, addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && host == "127.0.0.1" {
		if n, perr := strconv.ParseUint(port, 10, 16); perr == nil {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%s %q: want 127.0.0.1:PORT, PORT a number from 0 (any free port) to 65535", flag, addr)
}
