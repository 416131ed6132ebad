package devbroker

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// librdkafka before 2.x's newest releases (Debian 12's kcat has 2.0.2)
// starts SASL only with a broker that advertises SaslHandshake v0, as
// Kafka does (v0-v1); kfake advertises v1 only. A secured broker therefore
// answers ApiVersions itself, with kfake's own versions but SaslHandshake
// from v0. The client then still uses v1, which kfake serves: only the
// advertised range changes.

// advertiseSaslHandshakeV0 makes c answer ApiVersions (v0-v3) with kfake's
// versions, SaslHandshake's minimum lowered to 0.
func advertiseSaslHandshakeV0(c *kfake.Cluster) error {
	keys, err := kfakeAPIKeys()
	if err != nil {
		return err
	}
	c.ControlKey(int16(kmsg.ApiVersions), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.ApiVersionsRequest)
		if r.Version > 3 {
			return nil, nil, false // kfake answers (and downgrades) itself
		}
		resp := r.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.ApiKeys = keys
		return resp, nil, true
	})
	return nil
}

var apiKeys struct {
	once sync.Once
	keys []kmsg.ApiVersionsResponseApiKey
	err  error
}

// kfakeAPIKeys returns the API versions kfake advertises, with
// SaslHandshake from v0, asked once of a throwaway plaintext cluster.
func kfakeAPIKeys() ([]kmsg.ApiVersionsResponseApiKey, error) {
	apiKeys.once.Do(func() {
		apiKeys.keys, apiKeys.err = askAPIKeys()
	})
	return apiKeys.keys, apiKeys.err
}

func askAPIKeys() ([]kmsg.ApiVersionsResponseApiKey, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("devbroker: api versions: %w", err)
	}
	defer c.Close()
	conn, err := net.DialTimeout("tcp", c.ListenAddrs()[0], 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("devbroker: api versions: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "eddy-devbroker", "1"
	if _, err := conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("eddy-devbroker")).AppendRequest(nil, req, 1)); err != nil {
		return nil, fmt.Errorf("devbroker: api versions: %w", err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return nil, fmt.Errorf("devbroker: api versions: %w", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, fmt.Errorf("devbroker: api versions: %w", err)
	}
	// correlation id (4 bytes); ApiVersions responses keep the v0 header.
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if err := resp.ReadFrom(body[4:]); err != nil {
		return nil, fmt.Errorf("devbroker: api versions: %w", err)
	}
	keys := slices.Clone(resp.ApiKeys)
	for i := range keys {
		if keys[i].ApiKey == int16(kmsg.SASLHandshake) {
			keys[i].MinVersion = 0
		}
	}
	return keys, nil
}
