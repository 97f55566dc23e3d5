package p2p

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"

	"shoal.dev/shoal/mesh"
)

// countingConn counts the writes made to a socket. Once stall is set, a
// write blocks until the conn is closed, as on a peer that stopped
// reading, and says so on stalled.
type countingConn struct {
	net.Conn
	writes  atomic.Int64
	stall   atomic.Bool
	stalled chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newCountingConn(c net.Conn) *countingConn {
	return &countingConn{Conn: c, stalled: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	if c.stall.Load() {
		select {
		case c.stalled <- struct{}{}:
		default:
		}
		<-c.closed
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *countingConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// tlsPair secures a loopback TCP connection with libp2p's TLS, the client
// end through cli and the server end through srv (each coalescing or not),
// and returns both secured ends and the client's counted socket.
func tlsPair(t *testing.T, coalesceCli, coalesceSrv bool) (cs, ss sec.SecureConn, raw *countingConn) {
	t.Helper()
	transport := func(coalesce bool) (sec.SecureTransport, peer.ID) {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(key)
		tr, err := tlssec.New(tlssec.ID, key, []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}})
		if err != nil {
			t.Fatal(err)
		}
		if coalesce {
			return coalescing{tr}, id
		}
		return tr, id
	}
	cliT, _ := transport(coalesceCli)
	srvT, srvID := transport(coalesceSrv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := testCtx(t, testTimeout)
	type res struct {
		c   sec.SecureConn
		err error
	}
	served := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- res{nil, err}
			return
		}
		sc, err := srvT.SecureInbound(ctx, c, "")
		served <- res{sc, err}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw = newCountingConn(c)
	cs, err = cliT.SecureOutbound(ctx, raw, srvID)
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	r := <-served
	if r.err != nil {
		t.Fatalf("server handshake: %v", r.err)
	}
	ss = r.c
	t.Cleanup(func() { cs.Close(); ss.Close() })
	deadline, _ := ctx.Deadline()
	cs.SetDeadline(deadline)
	ss.SetDeadline(deadline)
	return cs, ss, raw
}

// TestCoalescedTLS: through coalescing, the TLS records of one Write (1 MiB
// is 64 records of 16 KiB) leave in one socket write per maxBatch bytes;
// the bytes are TLS records as before, so a coalescing end and a plain end
// (an older release) exchange data both ways intact, in every pairing.
func TestCoalescedTLS(t *testing.T) {
	const size = 1 << 20
	for _, tc := range []struct {
		name     string
		cli, srv bool
		// maxWrites bounds the client's socket writes for one Write of size
		// bytes (a batch holds 15 records of 16 KiB and their overhead);
		// minWrites is what plain TLS needs.
		maxWrites, minWrites int64
	}{
		{"coalescing to coalescing", true, true, size/maxBatch + 1, 0},
		{"coalescing to plain", true, false, size/maxBatch + 1, 0},
		{"plain to coalescing", false, true, 1 << 30, size / (16 << 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, ss, raw := tlsPair(t, tc.cli, tc.srv)
			for _, dir := range []struct {
				name string
				w, r sec.SecureConn
			}{{"client to server", cs, ss}, {"server to client", ss, cs}} {
				data := make([]byte, size)
				rand.Read(data)
				w0 := raw.writes.Load()
				werr := make(chan error, 1)
				go func() {
					_, err := dir.w.Write(data)
					werr <- err
				}()
				got := make([]byte, size)
				if _, err := io.ReadFull(dir.r, got); err != nil {
					t.Fatalf("%s: read: %v", dir.name, err)
				}
				if err := <-werr; err != nil {
					t.Fatalf("%s: write: %v", dir.name, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%s: the bytes differ", dir.name)
				}
				if dir.w != cs {
					continue
				}
				n := raw.writes.Load() - w0
				if n > tc.maxWrites || n < tc.minWrites {
					t.Errorf("%s: one Write of %d bytes took %d socket writes, want %d to %d", dir.name, size, n, tc.minWrites, tc.maxWrites)
				}
			}
			// A close reaches the other end as EOF, after the data.
			if err := cs.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if n, err := ss.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("read after the peer closed: %d, %v; want EOF", n, err)
			}
		})
	}
}

// TestCoalescedCloseDuringWrite: closing a connection whose batch is
// blocked on a peer that stopped reading ends the Write at once, as
// crypto/tls's own Close does during its Write; without it the
// close_notify alert would queue behind the batch.
func TestCoalescedCloseDuringWrite(t *testing.T) {
	cs, _, raw := tlsPair(t, true, true)
	raw.stall.Store(true)
	werr := make(chan error, 1)
	go func() {
		_, err := cs.Write([]byte("held in the batch until the socket takes it"))
		werr <- err
	}()
	ctx := testCtx(t, testTimeout)
	select {
	case <-raw.stalled:
	case <-ctx.Done():
		t.Fatal("the batch never reached the socket")
	}
	closed := make(chan error, 1)
	go func() { closed <- cs.Close() }()
	select {
	case err := <-werr:
		if err == nil {
			t.Error("the stalled Write succeeded")
		}
	case <-ctx.Done():
		t.Fatal("Write still blocked after Close")
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close blocked")
	}
}

// TestDirectPlaneCoalesces: a stream over the direct plane costs about two
// socket writes per 256 KiB yamux frame, not one per 16 KiB TLS record nor
// one per 64 KiB frame, and its bytes arrive intact. Counted from the process's own write system
// calls (Linux /proc/self/io), both hosts being in this process.
func TestDirectPlaneCoalesces(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skip("no /proc/self/io:", err)
	}
	a := newHost(t, directCfg("a", 6))
	b := newHost(t, directCfg("b", 6))
	introduce(t, a, b)
	setDirect(t, a, b)
	setDirect(t, b, a)
	const proto, size = "/shoal/test-coalesce/1", 16 << 20
	ctx := testCtx(t, testTimeout)
	deadline, _ := ctx.Deadline()
	served := make(chan exchangeResult, 1)
	b.Handle(proto, func(from string, s mesh.Stream) {
		defer s.Close()
		s.SetDeadline(deadline)
		served <- exchange(s, 2, 0)
	})
	// The connection and its handshake first, outside the count.
	if _, err := hello(t, a, b.ID(), proto); err != nil {
		t.Fatal(err)
	}
	<-served
	s, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(deadline)
	sent := make([]byte, size)
	rand.Read(sent)
	w0 := procWrites(t)
	for i := 0; i < size; i += 1 << 20 {
		if _, err := s.Write(sent[i : i+1<<20]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	theirs := <-served
	writes := procWrites(t) - w0
	if theirs.readErr != nil || theirs.writeErr != nil {
		t.Fatalf("%+v", theirs)
	}
	if theirs.got != sha256.Sum256(sent) || theirs.n != size {
		t.Fatal("data corrupted in transit")
	}
	// Plain TLS: at least size/16 KiB = 1024 writes. Coalesced: 256 frames
	// of 64 KiB, the receiver's window updates and the few writes of the
	// stream's opening and closing.
	if records := int64(size / (16 << 10)); writes >= records/2 {
		t.Errorf("%d MiB over the direct plane took %d write system calls; plain TLS needs %d, coalesced about %d", size>>20, writes, records, records/4)
	}
	// Frames of directFrame (256 KiB) bytes: each 1 MiB Write is four
	// frames of two socket writes each, and the receiver's window updates;
	// with yamux's 64 KiB frames it took 422.
	if frames := int64(size / (64 << 10)); writes >= frames {
		t.Errorf("%d MiB over the direct plane took %d write system calls; with 256 KiB frames it takes about %d, with 64 KiB ones %d and more", size>>20, writes, size/(128<<10), frames)
	}
	t.Logf("%d write system calls for %d MiB", writes, size>>20)
}

// A node whose direct plane sends yamux's 64 KiB frames and one that sends
// 256 KiB frames (directFrame) exchange streams both ways: each sends
// frames no larger than the other's window, whatever the size it sends.
func TestDirectFramesMixed(t *testing.T) {
	// a is built with the yamux of the release before directFrame.
	saved := directMuxer
	directMuxer = yamux.DefaultTransport
	a := newHost(t, directCfg("a", 6))
	directMuxer = saved
	b := newHost(t, directCfg("b", 6))
	introduce(t, a, b)
	setDirect(t, a, b)
	setDirect(t, b, a)
	const proto, size = "/shoal/test-frames/1", 8 << 20
	ctx := testCtx(t, testTimeout)
	deadline, _ := ctx.Deadline()
	for _, tc := range []struct {
		name     string
		from, to *Host
	}{{"64 KiB to 256 KiB frames", a, b}, {"256 KiB to 64 KiB frames", b, a}} {
		served := make(chan exchangeResult, 1)
		tc.to.Handle(proto, func(from string, s mesh.Stream) {
			defer s.Close()
			s.SetDeadline(deadline)
			served <- exchange(s, 2, size)
		})
		s, err := tc.from.NewStream(ctx, tc.to.ID(), proto)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		s.SetDeadline(deadline)
		// Written 1 MiB at a time, so that b's writes fill its frames.
		ours := exchangeWith(s, 1, size, 1<<20)
		s.Close()
		theirs := <-served
		if ours.readErr != nil || ours.writeErr != nil || theirs.readErr != nil || theirs.writeErr != nil {
			t.Fatalf("%s: ours %+v, theirs %+v", tc.name, ours, theirs)
		}
		if ours.got != theirs.sent || theirs.got != ours.sent || ours.n != size || theirs.n != size {
			t.Fatalf("%s: data corrupted in transit (%d and %d bytes read)", tc.name, ours.n, theirs.n)
		}
	}
}

// procWrites is the number of write system calls this process made.
func procWrites(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscw in /proc/self/io")
	return 0
}
