package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/mesh"
)

// testTimeout bounds each blocking step of a test. It is generous: it only
// matters when a test is about to fail.
const testTimeout = 20 * time.Second

func psk(b byte) []byte { return bytes.Repeat([]byte{b}, PSKSize) }

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newHost starts a host on loopback and closes it when the test ends.
func newHost(t *testing.T, cfg Config) *Host {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// introduce tells each host the other's addresses.
func introduce(t *testing.T, hs ...*Host) {
	t.Helper()
	for _, a := range hs {
		for _, b := range hs {
			if a == b {
				continue
			}
			if err := a.AddPeer(b.ID(), b.Addrs()); err != nil {
				t.Fatalf("AddPeer: %v", err)
			}
		}
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPingBothWays(t *testing.T) {
	a := newHost(t, Config{Name: "alpha", PSK: psk(1)})
	b := newHost(t, Config{Name: "beta", PSK: psk(1)})
	introduce(t, a, b)
	ctx := testCtx(t, testTimeout)

	for _, tc := range []struct {
		from, to *Host
		name     string
	}{{a, b, "beta"}, {b, a, "alpha"}, {a, b, "beta"}} {
		res, err := tc.from.Ping(ctx, tc.to.ID())
		if err != nil {
			t.Fatalf("ping %s: %v", tc.name, err)
		}
		if res.Name != tc.name || res.PeerID != tc.to.ID() || res.RTT <= 0 {
			t.Errorf("ping %s = %+v, want name %q, peer %s, positive RTT", tc.name, res, tc.name, tc.to.ID())
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	h := newHost(t, DefaultConfig())
	addrs := h.Addrs()
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "/ip4/127.0.0.1/tcp/") || strings.HasSuffix(addrs[0], "/tcp/0") {
		t.Fatalf("Addrs() = %v, want one loopback TCP address with a real port", addrs)
	}
	if err := ValidateAddrs(addrs); err != nil {
		t.Fatalf("ValidateAddrs(Addrs()): %v", err)
	}
}

// TestStreamBulkBothWays sends 8 MiB each way on one stream at once: each
// end writes in one goroutine and reads in another, then CloseWrite ends the
// other's reading with EOF.
func TestStreamBulkBothWays(t *testing.T) {
	const (
		proto = "/shoal/test-bulk/1"
		size  = 8 << 20
	)
	a := newHost(t, Config{PSK: psk(2)})
	b := newHost(t, Config{PSK: psk(2)})
	introduce(t, a, b)
	ctx := testCtx(t, testTimeout)
	deadline, _ := ctx.Deadline()

	served := make(chan exchangeResult, 1)
	b.Handle(proto, func(from string, s mesh.Stream) {
		defer s.Close()
		s.SetDeadline(deadline)
		r := exchange(s, 2, size)
		r.from = from
		served <- r
	})

	s, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	defer s.Close()
	s.SetDeadline(deadline)
	mine := exchange(s, 1, size)

	var theirs exchangeResult
	select {
	case theirs = <-served:
	case <-ctx.Done():
		t.Fatal("handler did not finish")
	}
	for _, r := range []exchangeResult{mine, theirs} {
		if r.readErr != nil || r.writeErr != nil {
			t.Fatalf("read err %v, write err %v", r.readErr, r.writeErr)
		}
		if r.n != size {
			t.Errorf("read %d bytes, want %d", r.n, size)
		}
	}
	if mine.got != theirs.sent || theirs.got != mine.sent {
		t.Error("data corrupted in transit")
	}
	if theirs.from != a.ID() {
		t.Errorf("handler saw peer %s, want %s", theirs.from, a.ID())
	}
}

// exchangeResult is what one end of exchange saw.
type exchangeResult struct {
	from              string   // the peer, as a handler saw it
	sent, got         [32]byte // SHA-256 of the bytes written and read
	n                 int64    // bytes read
	readErr, writeErr error
}

// exchange writes size pseudo-random bytes (seeded by seed) to s and closes
// its write side in one goroutine, while reading s to EOF in this one.
func exchange(s mesh.Stream, seed byte, size int64) (r exchangeResult) {
	return exchangeWith(s, seed, size, 64<<10)
}

// exchangeWith is exchange writing buf bytes at a time.
func exchangeWith(s mesh.Stream, seed byte, size int64, buf int) (r exchangeResult) {
	written := make(chan error, 1)
	go func() {
		h := sha256.New()
		src := io.LimitReader(rand.NewChaCha8([32]byte{seed}), size)
		_, err := io.CopyBuffer(io.MultiWriter(s, h), src, make([]byte, buf))
		if err == nil {
			err = s.CloseWrite()
		}
		copy(r.sent[:], h.Sum(nil))
		written <- err
	}()
	h := sha256.New()
	r.n, r.readErr = io.Copy(h, s)
	copy(r.got[:], h.Sum(nil))
	r.writeErr = <-written
	return r
}

func TestKeyFileKeepsPeerID(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "data", "p2p", "identity.key")

	h1, err := New(Config{KeyFile: keyFile, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	id := h1.ID()
	addrs := h1.Addrs()
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		keyFile:                    0o600,
		filepath.Dir(keyFile):      0o700 | os.ModeDir,
		filepath.Join(dir, "data"): 0o700 | os.ModeDir,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode(), want)
		}
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	// Same port as before, too: Close must have released it.
	h2 := newHost(t, Config{KeyFile: keyFile, ListenAddrs: addrs})
	if h2.ID() != id {
		t.Errorf("restarted host has peer ID %s, want %s", h2.ID(), id)
	}
	if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, key) {
		t.Error("key file changed on restart")
	}
	if other := newHost(t, Config{}); other.ID() == id {
		t.Error("a host without a key file got the same peer ID")
	}
}

func TestBadKeyFile(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage": []byte("this is not a key\n"),
		"empty":   {},
		"truncated": func() []byte {
			keyFile := filepath.Join(t.TempDir(), "key")
			h := newHost(t, Config{KeyFile: keyFile})
			h.Close()
			b, err := os.ReadFile(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			return b[:len(b)/2]
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(keyFile, content, 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := New(Config{KeyFile: keyFile, Logger: testLogger(t)})
			if err == nil {
				h.Close()
				t.Fatal("New accepted a malformed key file")
			}
			if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), keyFile) {
				t.Errorf("error %q should wrap ErrBadKeyFile and name the file", err)
			}
			if after, _ := os.ReadFile(keyFile); !bytes.Equal(after, content) {
				t.Error("malformed key file was modified")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		_, err := New(Config{KeyFile: t.TempDir(), Logger: testLogger(t)})
		if !errors.Is(err, ErrBadKeyFile) {
			t.Errorf("New with a directory as key file: %v, want ErrBadKeyFile", err)
		}
	})
}

// TestWrongPSK checks that hosts in different private networks (or one in
// none) cannot talk, fail within the deadline with ErrNotInNetwork, and stay
// healthy.
func TestWrongPSK(t *testing.T) {
	a := newHost(t, Config{Name: "a", PSK: psk(3)})
	a2 := newHost(t, Config{Name: "a2", PSK: psk(3)})
	b := newHost(t, Config{Name: "b", PSK: psk(4)})
	b2 := newHost(t, Config{Name: "b2", PSK: psk(4)})
	open := newHost(t, Config{Name: "open"})
	introduce(t, a, a2, b, b2, open)

	// A stalled handshake ends at the deadline, so keep it short; a failed
	// one ends at once.
	const deadline = 500 * time.Millisecond
	for _, tc := range []struct {
		name     string
		from, to *Host
	}{
		{"other PSK", b, a},
		{"other PSK, reverse", a, b},
		{"no PSK to PSK", open, a},
		{"PSK to no PSK", a, open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, op := range []string{"ping", "stream"} {
				ctx := testCtx(t, deadline)
				start := time.Now()
				var err error
				if op == "ping" {
					_, err = tc.from.Ping(ctx, tc.to.ID())
				} else {
					var s mesh.Stream
					s, err = tc.from.NewStream(ctx, tc.to.ID(), PingProtocol)
					if s != nil {
						s.Reset()
					}
				}
				elapsed := time.Since(start)
				if err == nil {
					t.Fatalf("%s succeeded across private networks", op)
				}
				if !errors.Is(err, ErrNotInNetwork) {
					t.Errorf("%s: %v; want ErrNotInNetwork", op, err)
				}
				if elapsed > deadline+testTimeout/4 {
					t.Errorf("%s took %v with a %v deadline", op, elapsed, deadline)
				}
				t.Logf("%s failed after %v: %v", op, elapsed.Round(time.Millisecond), err)
			}
		})
	}

	// Everyone still answers within their own network.
	ctx := testCtx(t, testTimeout)
	for _, pair := range [][2]*Host{{a, a2}, {a2, a}, {b, b2}, {b2, b}} {
		from, to := pair[0], pair[1]
		if res, err := from.Ping(ctx, to.ID()); err != nil || res.PeerID != to.ID() {
			t.Errorf("ping within the network after the failures: %+v, %v", res, err)
		}
	}
}

// TestWrongPeer dials one peer's ID at another peer's address.
func TestWrongPeer(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	c := newHost(t, Config{})
	if err := a.AddPeer(c.ID(), b.Addrs()); err != nil {
		t.Fatal(err)
	}
	_, err := a.Ping(testCtx(t, testTimeout), c.ID())
	if !errors.Is(err, ErrWrongPeer) || errors.Is(err, ErrNotInNetwork) {
		t.Errorf("ping of c at b's address: %v, want ErrWrongPeer", err)
	}
}

func TestUnknownPeer(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	ctx := testCtx(t, testTimeout)
	if _, err := a.Ping(ctx, b.ID()); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("ping before AddPeer: %v, want ErrUnknownPeer", err)
	}

	introduce(t, a, b)
	if _, err := a.Ping(ctx, b.ID()); err != nil {
		t.Fatalf("ping after AddPeer: %v", err)
	}
	a.RemovePeer(b.ID())
	if _, err := a.Ping(ctx, b.ID()); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("ping after RemovePeer: %v, want ErrUnknownPeer", err)
	}
	a.RemovePeer("not a peer ID") // ignored

	// AddPeer replaces the addresses: a stale port is forgotten.
	dead := deadAddr(t)
	if err := a.AddPeer(b.ID(), []string{dead}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ping(testCtx(t, 2*time.Second), b.ID()); err == nil || errors.Is(err, ErrNotInNetwork) {
		t.Errorf("ping at a closed port: %v, want a dial error that is not ErrNotInNetwork", err)
	}
	if err := a.AddPeer(b.ID(), b.Addrs()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ping(ctx, b.ID()); err != nil {
		t.Fatalf("ping after AddPeer with the right address: %v", err)
	}
}

// deadAddr returns a loopback TCP multiaddr nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return "/ip4/127.0.0.1/tcp/" + itoa(port)
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

func TestUnsupportedProtocol(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	introduce(t, a, b)
	ctx := testCtx(t, testTimeout)
	if _, err := a.Ping(ctx, b.ID()); err != nil { // connect and identify first
		t.Fatal(err)
	}
	_, err := a.NewStream(ctx, b.ID(), "/shoal/nobody-serves-this/1")
	if !errors.Is(err, ErrUnsupportedProtocol) {
		t.Errorf("NewStream to an unserved protocol: %v, want ErrUnsupportedProtocol", err)
	}

	b.Handle("/shoal/test-late/1", func(_ string, s mesh.Stream) { s.Close() })
	b.RemoveHandler(PingProtocol)
	if _, err := a.Ping(ctx, b.ID()); err == nil {
		t.Error("ping succeeded after RemoveHandler")
	}
}

// TestBadPingReplies points a client at servers that answer the ping
// protocol wrongly: every case is an error, none a panic or a hang.
func TestBadPingReplies(t *testing.T) {
	client := newHost(t, Config{PSK: psk(5)})
	server := newHost(t, Config{Name: "server", PSK: psk(5)})
	introduce(t, client, server)
	silenced := make(chan struct{})

	// reply answers a well-formed request with answer(request).
	reply := func(answer func(pingRequest) any) func(s mesh.Stream) {
		return func(s mesh.Stream) {
			var req pingRequest
			if err := readMsg(s, &req); err != nil {
				s.Reset()
				return
			}
			writeMsg(s, answer(req))
			s.Close()
		}
	}
	raw := func(b []byte) func(s mesh.Stream) {
		return func(s mesh.Stream) {
			io.Copy(io.Discard, s)
			s.Write(b)
			s.Close()
		}
	}
	for _, tc := range []struct {
		name  string
		serve func(s mesh.Stream)
		want  string
	}{
		{"garbage", raw([]byte("\xc1\xc1\xc1 not msgpack")), "malformed"},
		{"empty", raw(nil), "empty"},
		{"oversize", raw(bytes.Repeat([]byte{0xc0}, 4096)), "longer than"},
		{"trailing bytes", func(s mesh.Stream) {
			var req pingRequest
			readMsg(s, &req)
			writeMsg(s, &pingReply{Nonce: req.Nonce, Name: "x", PeerID: server.ID()})
			s.Write([]byte{0xc0})
			s.Close()
		}, "after it"},
		{"wrong type", reply(func(pingRequest) any { return 42 }), "malformed"},
		{"huge string header", raw([]byte{0x81, 0xa4, 'n', 'a', 'm', 'e', 0xdb, 0x7f, 0xff, 0xff, 0xff}), "malformed"},
		{"wrong nonce", reply(func(pingRequest) any {
			return pingReply{Name: "x", PeerID: server.ID()}
		}), "nonce"},
		{"wrong peer ID", reply(func(req pingRequest) any {
			return pingReply{Nonce: req.Nonce, Name: "x", PeerID: client.ID()}
		}), "claims peer ID"},
		{"reset", func(s mesh.Stream) { s.Reset() }, "ping"},
		{"silent", func(s mesh.Stream) {
			// Hold the stream without answering until the client has
			// given up.
			<-silenced
			s.Reset()
		}, "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server.Handle(PingProtocol, func(_ string, s mesh.Stream) {
				s.SetDeadline(time.Now().Add(testTimeout))
				tc.serve(s)
			})
			d := testTimeout
			if tc.name == "silent" {
				d = 300 * time.Millisecond
			}
			_, err := client.Ping(testCtx(t, d), server.ID())
			if tc.name == "silent" {
				close(silenced)
			}
			if err == nil {
				t.Fatal("ping succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	// The real server is back in business.
	server.Handle(PingProtocol, server.servePing)
	if res, err := client.Ping(testCtx(t, testTimeout), server.ID()); err != nil || res.Name != "server" {
		t.Fatalf("ping after the bad servers: %+v, %v", res, err)
	}
}

// TestBadPingRequests writes garbage to a real ping server: it resets the
// stream (the client sees an error, not a reply) and goes on serving.
func TestBadPingRequests(t *testing.T) {
	client := newHost(t, Config{})
	server := newHost(t, Config{Name: "server", PingTimeout: 300 * time.Millisecond})
	introduce(t, client, server)

	for _, tc := range []struct {
		name    string
		request []byte
		hold    bool // do not close the write side: the server times out
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n"), false},
		{"oversize", bytes.Repeat([]byte{0xc0}, 64<<10), false},
		{"empty", nil, false},
		{"truncated", []byte{0x82, 0xa5, 'n', 'o', 'n'}, false},
		{"never finished", []byte{0x82}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, testTimeout)
			s, err := client.NewStream(ctx, server.ID(), PingProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Reset()
			deadline, _ := ctx.Deadline()
			s.SetDeadline(deadline)
			// The server may reset the stream before all is written.
			s.Write(tc.request)
			if !tc.hold {
				s.CloseWrite()
			}
			got, err := io.ReadAll(s)
			if err == nil || len(got) != 0 {
				t.Errorf("server answered %q, %v; want a reset", got, err)
			}
		})
	}
	if res, err := client.Ping(testCtx(t, testTimeout), server.ID()); err != nil || res.Name != "server" {
		t.Fatalf("ping after the garbage: %+v, %v", res, err)
	}
}

func TestBadConfig(t *testing.T) {
	taken := newHost(t, Config{}).Addrs()[0]
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"malformed multiaddr", Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/notaport"}}, "malformed multiaddr"},
		{"not a multiaddr", Config{ListenAddrs: []string{"127.0.0.1:4001"}}, "malformed multiaddr"},
		{"quic", Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}}, "nothing more"},
		{"websocket", Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0/ws"}}, "nothing more"},
		{"dns listen", Config{ListenAddrs: []string{"/dns4/localhost/tcp/0"}}, "not a DNS name"},
		{"p2p suffix", Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}}, "nothing more"},
		{"no host", Config{ListenAddrs: []string{"/tcp/4001"}}, "want /ip4"},
		{"unix", Config{ListenAddrs: []string{"/unix/tmp/p2p.sock"}}, "want /ip4"},
		{"udp", Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/1"}}, "only TCP"},
		{"short PSK", Config{PSK: make([]byte, 31)}, "31 bytes"},
		{"long PSK", Config{PSK: make([]byte, 64)}, "64 bytes"},
		{"empty PSK", Config{PSK: []byte{}}, "0 bytes"},
		{"negative ping timeout", Config{PingTimeout: -time.Second}, "negative"},
		{"port in use", Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", taken}}, taken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = testLogger(t)
			h, err := New(tc.cfg)
			if err == nil {
				h.Close()
				t.Fatal("New accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.name == "port in use" && !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("error %q does not wrap EADDRINUSE", err)
			}
		})
	}
}

func TestValidateAddrs(t *testing.T) {
	for _, good := range [][]string{
		{"/ip4/10.0.0.7/tcp/4001"},
		{"/ip6/::1/tcp/4001", "/dns4/node-3/tcp/1", "/dns/example.com/tcp/2", "/dns6/x/tcp/3"},
	} {
		if err := ValidateAddrs(good); err != nil {
			t.Errorf("ValidateAddrs(%q): %v", good, err)
		}
	}
	for _, bad := range [][]string{
		nil,
		{""},
		{"/ip4/10.0.0.7/tcp/4001", "/ip4/10.0.0.7/udp/4001"},
		{"/ip4/10.0.0.7"},
		{"/ip4/300.0.0.1/tcp/1"},
		{"/ip4/10.0.0.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"},
		{"/unix/tmp/sock"},
	} {
		if err := ValidateAddrs(bad); err == nil {
			t.Errorf("ValidateAddrs(%q) accepted it", bad)
		}
	}
}

func TestAddPeerValidates(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	for _, tc := range []struct {
		name  string
		id    string
		addrs []string
		want  string
	}{
		{"empty id", "", b.Addrs(), "empty peer ID"},
		{"malformed id", "QmNotAPeer", b.Addrs(), "malformed peer ID"},
		{"self", a.ID(), b.Addrs(), "this host"},
		{"no addrs", b.ID(), nil, "no addresses"},
		{"bad addr", b.ID(), []string{"/ip4/1.2.3.4/udp/1"}, "only TCP"},
	} {
		if err := a.AddPeer(tc.id, tc.addrs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: AddPeer = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := a.NewStream(t.Context(), "garbage", PingProtocol); err == nil {
		t.Error("NewStream accepted a malformed peer ID")
	}
}

// TestCloseWaitsForHandlers checks that Close resets open streams, waits for
// the handlers serving them, is safe twice, and that the host refuses work
// afterwards.
func TestCloseWaitsForHandlers(t *testing.T) {
	const proto = "/shoal/test-block/1"
	a := newHost(t, Config{})
	b, err := New(Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	introduce(t, a, b)
	ctx := testCtx(t, testTimeout)

	entered := make(chan struct{})
	returned := make(chan error, 1)
	b.Handle(proto, func(_ string, s mesh.Stream) {
		close(entered)
		_, err := io.ReadAll(s) // blocks: the client never closes
		s.Reset()
		returned <- err
	})
	s, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	if _, err := s.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("handler never ran")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-returned:
		if err == nil {
			t.Error("handler's Read succeeded on a closed host")
		}
	default:
		t.Fatal("Close returned before the handler did")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.NewStream(ctx, a.ID(), proto); !errors.Is(err, ErrClosed) {
		t.Errorf("NewStream after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Ping(ctx, a.ID()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

// TestManyConcurrentStreams holds more streams open at once between two
// peers than go-libp2p's default resource limits allow, as a shuffle does.
func TestManyConcurrentStreams(t *testing.T) {
	const (
		proto = "/shoal/test-many/1"
		n     = 600
	)
	a := newHost(t, Config{PSK: psk(6)})
	b := newHost(t, Config{PSK: psk(6)})
	introduce(t, a, b)
	ctx := testCtx(t, testTimeout)
	deadline, _ := ctx.Deadline()

	open := make(chan struct{}, n)
	b.Handle(proto, func(_ string, s mesh.Stream) {
		s.SetDeadline(deadline)
		var buf [4]byte
		if _, err := io.ReadFull(s, buf[:]); err != nil {
			s.Reset()
			return
		}
		open <- struct{}{}
		io.Copy(io.Discard, s) // until the client closes its side
		s.Write(buf[:])        // echo the stream's number
		s.Close()
	})

	streams := make([]mesh.Stream, n)
	for i := range streams {
		s, err := a.NewStream(ctx, b.ID(), proto)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer s.Reset()
		s.SetDeadline(deadline)
		if _, err := s.Write([]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams[i] = s
	}
	for range n {
		select {
		case <-open:
		case <-ctx.Done():
			t.Fatal("not every stream reached the handler")
		}
	}
	// All n streams are open on both sides now.
	for i, s := range streams {
		if err := s.CloseWrite(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		got, err := io.ReadAll(s)
		want := []byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("stream %d: read %v, %v; want %v", i, got, err, want)
		}
		s.Close()
	}
}
