package blockstore

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/mesh"
)

// holdingDialer dials through d, and holds every stream that sends the
// block held until one stream has sent the block awaited (or until the
// deadline, noting that it passed).
type holdingDialer struct {
	d                mesh.Dialer
	held, awaited    ID
	seen             chan struct{} // closed once awaited was sent
	once             sync.Once
	deadline         time.Duration
	mu               sync.Mutex
	heldStreams      int
	expiredWhileHeld bool
}

func (h *holdingDialer) Dial(ctx context.Context, node mesh.NodeName, protocol string) (mesh.Stream, error) {
	st, err := h.d.Dial(ctx, node, protocol)
	if err != nil {
		return nil, err
	}
	return &holdingStream{Stream: st, h: h}, nil
}

type holdingStream struct {
	mesh.Stream
	h       *holdingDialer
	head    []byte
	decided bool
}

func (s *holdingStream) Write(b []byte) (int, error) {
	if !s.decided {
		s.head = append(s.head, b[:min(len(b), 1024)]...)
		h := s.h
		switch {
		case bytes.Contains(s.head, h.awaited[:]):
			s.decided = true
			h.once.Do(func() { close(h.seen) })
		case bytes.Contains(s.head, h.held[:]):
			s.decided = true
			h.mu.Lock()
			h.heldStreams++
			h.mu.Unlock()
			select {
			case <-h.seen:
			case <-time.After(h.deadline):
				h.mu.Lock()
				h.expiredWhileHeld = true
				h.mu.Unlock()
			}
		case len(s.head) >= 1024:
			s.decided = true
		}
	}
	return s.Stream.Write(b)
}

// TestCreateSendsTheManifestWithTheLastBlock: a file's manifest is sent to
// its owners while its last block is still being written, not after: a
// small file's commit waits for one replicated write, not two. The block's
// writes to the other nodes are held until the manifest has been sent;
// when the manifest waits for them instead, they are released only at the
// deadline and the test fails. The file then reads back whole, every copy
// in place.
func TestCreateSendsTheManifestWithTheLastBlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	data := []byte("the quick brown fox jumps over the lazy dog the end\n")
	h := &holdingDialer{
		held:     Sum(data),
		seen:     make(chan struct{}),
		deadline: 10 * time.Second,
	}
	mb, err := encodeManifest(Manifest{Blocks: []BlockRef{{ID: h.held, Size: int64(len(data))}}})
	if err != nil {
		t.Fatal(err)
	}
	h.awaited = Sum(mb)
	n1 := c.nodes["n1"]
	h.d = n1.mesh
	w := NewFS(FSConfig{Self: "n1", Store: n1.fs.Store(), Client: NewClient(h), Records: c.recs, Ring: c.ring, Logger: quietLog()})
	info, err := w.Create(ctx, "/out/part-r-00000", bytes.NewReader(data), CreateOptions{Replication: 3})
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	held, expired := h.heldStreams, h.expiredWhileHeld
	h.mu.Unlock()
	if held == 0 {
		t.Fatal("no write of the block went through the dialer: the test holds nothing")
	}
	if expired {
		t.Errorf("the manifest was not sent while the file's block was being written (held %d block writes for %s)", held, h.deadline)
	}
	if info.Manifest != h.awaited {
		t.Fatalf("manifest %s, want %s", info.Manifest.Short(), h.awaited.Short())
	}
	if got := readAll(t, c.nodes["n2"].fs, "/out/part-r-00000"); !bytes.Equal(got, data) {
		t.Fatalf("read back %q, want %q", got, data)
	}
	c.checkReplicas(ctx, "n3")
}
