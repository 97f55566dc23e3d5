package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/p2p"
	"shoal.dev/shoal/peer"
)

// lockedBuffer is a log sink the nodes' goroutines write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUnspokenProtocol: a stream to a member that does not serve the
// protocol asked for (a release whose formats this one cannot meet, though
// its wire generation said they would) fails in Shoal's words, naming the
// member, both releases and the protocol, not libp2p's negotiation text;
// and the node says so in one log line, once however often it tries.
func TestUnspokenProtocol(t *testing.T) {
	var logs lockedBuffer
	c := clustertest.Start(t, 2, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		if i == 0 {
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		}
	}})
	want := fmt.Sprintf("node2 (release dev, wire format %d) does not speak /shoal/none/1, which this node (release dev, wire format %d) uses: upgrade one release at a time: the peer does not serve the protocol", peer.WireVersion, peer.WireVersion)
	for range 3 {
		s, err := c.Node(0).Dial(context.Background(), "node2", "/shoal/none/1")
		if err == nil {
			s.Close()
			t.Fatal("a stream of a protocol node2 does not serve opened")
		}
		if !errors.Is(err, p2p.ErrUnsupportedProtocol) || err.Error() != want {
			t.Fatalf("error %q, want %q (and p2p.ErrUnsupportedProtocol)", err, want)
		}
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "cannot speak to it") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "member=node2") || !strings.Contains(lines[0], "protocol=/shoal/none/1") || !strings.Contains(lines[0], "member_release=dev") {
		t.Fatalf("want one log line naming node2 and /shoal/none/1, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}
