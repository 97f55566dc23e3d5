package p2p

import (
	"errors"
	"io"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"

	"shoal.dev/shoal/mesh"
)

// directCfg is a host config with the private network psk(k) and the
// direct plane on loopback.
func directCfg(name string, k byte) Config {
	return Config{Name: name, PSK: psk(k), DirectListenAddrs: []string{DefaultListenAddr}}
}

// setDirect tells from the direct addresses of each of to.
func setDirect(t *testing.T, from *Host, to ...*Host) {
	t.Helper()
	for _, h := range to {
		if err := from.SetDirect(h.ID(), h.DirectAddrs()); err != nil {
			t.Fatalf("SetDirect: %v", err)
		}
	}
}

// hello opens a stream from from to peer to speaking proto, sends a
// greeting, reads the answer to its end and names the security protocol
// the stream ran over.
func hello(t *testing.T, from *Host, to, proto string) (string, error) {
	ctx := testCtx(t, 5*time.Second)
	s, err := from.NewStream(ctx, to, proto)
	if err != nil {
		return "", err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte("hello")); err != nil {
		return "", err
	}
	if err := s.CloseWrite(); err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		return "", err
	}
	return security(s), nil
}

// security names the security protocol a stream's connection runs.
func security(s mesh.Stream) string {
	return string(s.(network.Stream).Conn().ConnState().Security)
}

// TestDirectPlane: between two members that know each other's direct
// addresses, streams (bulk data both ways, and pings) run over the direct
// plane's TLS; towards a member without one they run over the private
// network.
func TestDirectPlane(t *testing.T) {
	a := newHost(t, directCfg("a", 5))
	b := newHost(t, directCfg("b", 5))
	old := newHost(t, Config{Name: "old", PSK: psk(5)}) // a release without a direct plane
	if len(a.DirectAddrs()) == 0 || len(old.DirectAddrs()) != 0 {
		t.Fatalf("direct addrs: a %v, old %v", a.DirectAddrs(), old.DirectAddrs())
	}
	introduce(t, a, b, old)
	setDirect(t, a, b)
	setDirect(t, b, a)
	setDirect(t, old, a) // ignored: old runs no direct plane

	const proto, size = "/shoal/test-direct/1", 4 << 20
	ctx := testCtx(t, testTimeout)
	deadline, _ := ctx.Deadline()
	served := make(chan exchangeResult, 4)
	for _, h := range []*Host{a, b, old} {
		h.Handle(proto, func(from string, s mesh.Stream) {
			defer s.Close()
			s.SetDeadline(deadline)
			r := exchange(s, 2, size)
			r.from = from
			served <- r
		})
	}
	for _, tc := range []struct {
		name     string
		from, to *Host
		want     string
	}{
		{"a to b", a, b, string(tlssec.ID)},
		{"b to a", b, a, string(tlssec.ID)},
		{"a to old", a, old, string(noise.ID)},
		{"old to a", old, a, string(noise.ID)},
	} {
		s, err := tc.from.NewStream(ctx, tc.to.ID(), proto)
		if err != nil {
			t.Fatalf("%s: NewStream: %v", tc.name, err)
		}
		if got := security(s); got != tc.want {
			t.Errorf("%s: stream secured by %s, want %s", tc.name, got, tc.want)
		}
		s.SetDeadline(deadline)
		mine := exchange(s, 1, size)
		s.Close()
		theirs := <-served
		if mine.readErr != nil || mine.writeErr != nil || theirs.readErr != nil || theirs.writeErr != nil {
			t.Fatalf("%s: %+v / %+v", tc.name, mine, theirs)
		}
		if mine.got != theirs.sent || theirs.got != mine.sent || mine.n != size || theirs.n != size {
			t.Errorf("%s: data corrupted in transit", tc.name)
		}
		if theirs.from != tc.from.ID() {
			t.Errorf("%s: handler saw peer %s, want %s", tc.name, theirs.from, tc.from.ID())
		}
		if res, err := tc.from.Ping(ctx, tc.to.ID()); err != nil || res.PeerID != tc.to.ID() {
			t.Errorf("%s: ping: %+v, %v", tc.name, res, err)
		}
	}
}

// TestDirectPlaneAdmitsOnlyMembers: the direct plane has no private
// network, so its gate is what keeps strangers out. A host that knows a
// member's peer ID and direct address but was never passed to the
// member's AddPeer (as a node without the cluster secret never is: it
// cannot join the gossip that names members) cannot open a stream to it,
// neither on the direct plane nor, lacking the key, on the private
// network; nor can a member the host has removed. A member that has not
// yet been admitted (gossip has not reached the other end) falls back to
// the private network.
func TestDirectPlaneAdmitsOnlyMembers(t *testing.T) {
	const proto = "/shoal/test-gate/1"
	a := newHost(t, directCfg("a", 6))
	var served atomic.Int64
	a.Handle(proto, func(from string, s mesh.Stream) {
		served.Add(1)
		io.Copy(io.Discard, s)
		s.Close()
	})
	open := func(from *Host) (string, error) { return hello(t, from, a.ID(), proto) }

	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"other secret", directCfg("stranger", 7)},
		{"no secret", Config{Name: "open", DirectListenAddrs: []string{DefaultListenAddr}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newHost(t, tc.cfg)
			if err := x.AddPeer(a.ID(), a.Addrs()); err != nil {
				t.Fatal(err)
			}
			setDirect(t, x, a)
			if sec, err := open(x); err == nil {
				t.Fatalf("a stranger opened a stream (secured by %s)", sec)
			} else {
				t.Logf("refused: %v", err)
			}
			// Also straight on the direct plane, past the fallback.
			ctx := testCtx(t, 5*time.Second)
			if s, err := x.direct.NewStream(ctx, a.h.ID(), proto); err == nil {
				s.Write([]byte("hello"))
				s.CloseWrite()
				_, err = io.Copy(io.Discard, s)
				s.Close()
				if err == nil {
					t.Error("a stranger's direct stream was served")
				}
			}
		})
	}
	if n := served.Load(); n != 0 {
		t.Fatalf("a served %d streams from strangers", n)
	}

	// A member a has not admitted yet: the private network reaches a.
	m := newHost(t, directCfg("m", 6))
	if err := m.AddPeer(a.ID(), a.Addrs()); err != nil {
		t.Fatal(err)
	}
	setDirect(t, m, a)
	if sec, err := open(m); err != nil || sec != string(noise.ID) {
		t.Fatalf("not yet admitted: %s, %v; want a stream over the private network", sec, err)
	}
	// Until the retry delay has passed, streams keep to the private
	// network; then, once admitted, the direct plane.
	if err := a.AddPeer(m.ID(), m.Addrs()); err != nil {
		t.Fatal(err)
	}
	if sec, err := open(m); err != nil || sec != string(noise.ID) {
		t.Fatalf("within the retry delay: %s, %v; want a stream over the private network", sec, err)
	}
	m.directMu.Lock()
	f := m.directFailed[a.h.ID()]
	f.at = f.at.Add(-f.wait)
	m.directFailed[a.h.ID()] = f
	m.directMu.Unlock()
	if sec, err := open(m); err != nil || sec != string(tlssec.ID) {
		t.Fatalf("admitted: %s, %v; want a stream over the direct plane", sec, err)
	}
	// Removed: its direct connections are closed and new ones refused.
	a.RemovePeer(m.ID())
	before := served.Load()
	ctx := testCtx(t, 5*time.Second)
	if s, err := m.direct.NewStream(ctx, a.h.ID(), proto); err == nil {
		s.Write([]byte("hello"))
		s.CloseWrite()
		_, err = io.Copy(io.Discard, s)
		s.Close()
		if err == nil {
			t.Error("a removed member's direct stream was served")
		}
	}
	if served.Load() != before {
		t.Error("a removed member's direct stream reached the handler")
	}
}

// TestDirectConfig: bad direct listen addresses are refused, naming them.
func TestDirectConfig(t *testing.T) {
	for _, addrs := range [][]string{{"/ip4/127.0.0.1/udp/1"}, {"/dns4/x/tcp/1"}, {"nonsense"}} {
		if h, err := New(Config{DirectListenAddrs: addrs}); err == nil {
			h.Close()
			t.Errorf("%v accepted", addrs)
		} else if !errors.Is(err, err) || err.Error() == "" {
			t.Errorf("%v: %v", addrs, err)
		}
	}
}

// BenchmarkPlanes sends 64 MiB streams between two hosts of one private
// network over the private network (XSalsa20 under Noise) and over the
// direct plane (TLS 1.3), and reports the CPU time of both ends per GiB.
func BenchmarkPlanes(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := "private"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			mk := func() *Host {
				cfg := Config{PSK: psk(8)}
				if direct {
					cfg.DirectListenAddrs = []string{DefaultListenAddr}
				}
				h, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { h.Close() })
				return h
			}
			x, y := mk(), mk()
			for _, p := range [][2]*Host{{x, y}, {y, x}} {
				if err := p[0].AddPeer(p[1].ID(), p[1].Addrs()); err != nil {
					b.Fatal(err)
				}
				if err := p[0].SetDirect(p[1].ID(), p[1].DirectAddrs()); err != nil {
					b.Fatal(err)
				}
			}
			y.Handle("/x", func(_ string, s mesh.Stream) { io.Copy(io.Discard, s); s.Close() })
			buf := make([]byte, 256<<10)
			const n = 64 << 20
			b.SetBytes(n)
			var r0, r1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := x.NewStream(b.Context(), y.ID(), "/x")
				if err != nil {
					b.Fatal(err)
				}
				for w := 0; w < n; w += len(buf) {
					if _, err := s.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				s.CloseWrite()
				io.Copy(io.Discard, s)
				s.Close()
			}
			b.StopTimer()
			syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
			cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
			b.ReportMetric(cpu.Seconds()/(float64(b.N)*n/(1<<30)), "cpu-s/GiB")
		})
	}
}

// TestDirectRetry: after failed direct dials to a peer the direct plane
// waits before it is tried again, twice as long after each failure in a
// row up to a cap, and not at all after a success.
func TestDirectRetry(t *testing.T) {
	a := newHost(t, directCfg("a", 9))
	b := newHost(t, directCfg("b", 9))
	introduce(t, a, b)
	setDirect(t, a, b)
	p := b.h.ID()
	if !a.useDirect(p) {
		t.Fatal("direct plane not used at first")
	}
	fail := errors.New("dial failed")
	var waits []time.Duration
	for i := 0; i < 9; i++ {
		a.directResult(p, fail)
		if a.useDirect(p) {
			t.Fatalf("direct plane tried right after failure %d", i+1)
		}
		waits = append(waits, a.directFailed[p].wait)
	}
	want := []time.Duration{directRetryMin, 2 * directRetryMin, 4 * directRetryMin, 8 * directRetryMin, 16 * directRetryMin, 32 * directRetryMin, 64 * directRetryMin, directRetryMax, directRetryMax}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	a.directResult(p, nil)
	if !a.useDirect(p) {
		t.Error("direct plane not used after a success")
	}
}

// TestDirectRedialsARestartedMember: a member that was down (so that a
// direct dial to it failed) and came back on the same addresses is
// reached on the direct plane again once the retry delay has passed —
// libp2p's own dial backoff (5 s and more after a failed dial) must not
// keep it on the private network longer than the delay the README gives.
func TestDirectRedialsARestartedMember(t *testing.T) {
	const proto = "/shoal/test-redial/1"
	keyFile := filepath.Join(t.TempDir(), "identity.key")
	serve := func(h *Host) {
		h.Handle(proto, func(_ string, s mesh.Stream) {
			io.Copy(io.Discard, s)
			s.Close()
		})
	}
	open := func(from *Host, to string) (string, error) { return hello(t, from, to, proto) }

	cfgA := directCfg("a", 8)
	cfgA.KeyFile, cfgA.Logger = keyFile, testLogger(t)
	a1, err := New(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	m := newHost(t, directCfg("m", 8))
	introduce(t, m, a1)
	setDirect(t, m, a1)
	serve(a1)
	if sec, err := open(m, a1.ID()); err != nil || sec != string(tlssec.ID) {
		t.Fatalf("before the restart: %s, %v; want the direct plane", sec, err)
	}

	id, addrs, direct := a1.ID(), a1.Addrs(), a1.DirectAddrs()
	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open(m, id); err == nil {
		t.Fatal("a stream to a closed host opened")
	}

	cfgA.ListenAddrs, cfgA.DirectListenAddrs = addrs, direct
	a2 := newHost(t, cfgA)
	if err := a2.AddPeer(m.ID(), m.Addrs()); err != nil {
		t.Fatal(err)
	}
	serve(a2)
	m.directMu.Lock()
	f := m.directFailed[a2.h.ID()]
	f.at = f.at.Add(-f.wait)
	m.directFailed[a2.h.ID()] = f
	m.directMu.Unlock()
	if sec, err := open(m, id); err != nil || sec != string(tlssec.ID) {
		t.Fatalf("after the restart and the retry delay: %s, %v; want the direct plane", sec, err)
	}
}
