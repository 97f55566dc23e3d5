package p2p

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"shoal.dev/shoal/mesh"
)

func TestSameHostAddrs(t *testing.T) {
	for _, tc := range []struct {
		local, remote string
		want          bool
	}{
		{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/50123", true},
		{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.2/tcp/50123", true}, // all of 127/8 is this host
		{"/ip6/::1/tcp/4001", "/ip6/::1/tcp/50123", true},
		{"/ip4/198.18.0.1/tcp/4001", "/ip4/198.18.0.1/tcp/50123", true}, // two nodes on one host's address
		{"/ip4/198.18.0.1/tcp/4001", "/ip4/198.18.0.2/tcp/50123", false},
		{"/ip4/198.18.0.1/tcp/4001", "/ip6/2001:db8::1/tcp/50123", false},
		{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/50123", false}, // unknown: not the same
		{"/dns4/a.example/tcp/4001", "/dns4/a.example/tcp/50123", false},
	} {
		l, r := ma.StringCast(tc.local), ma.StringCast(tc.remote)
		if got := sameHostAddrs(l, r); got != tc.want {
			t.Errorf("sameHostAddrs(%s, %s) = %v, want %v", tc.local, tc.remote, got, tc.want)
		}
	}
	if sameHostAddrs(nil, ma.StringCast("/ip4/127.0.0.1/tcp/1")) {
		t.Error("no local address: want false")
	}
}

// TestSameHostOnLoopback: both ends of a stream between two hosts on
// loopback are on the same host; a stream of another kind is not.
func TestSameHostOnLoopback(t *testing.T) {
	const proto = "/shoal/test-samehost/1"
	a := newHost(t, Config{PSK: psk(3)})
	b := newHost(t, Config{PSK: psk(3)})
	introduce(t, a, b)
	ctx := testCtx(t, testTimeout)
	served := make(chan bool, 1)
	b.Handle(proto, func(_ string, s mesh.Stream) {
		defer s.Close()
		served <- SameHost(s)
	})
	s, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	defer s.Close()
	if !SameHost(s) {
		t.Error("dialing end: SameHost = false on loopback")
	}
	s.Write([]byte{1})
	select {
	case ok := <-served:
		if !ok {
			t.Error("serving end: SameHost = false on loopback")
		}
	case <-ctx.Done():
		t.Fatal("no stream served")
	}
	if SameHost(nil) {
		t.Error("SameHost(nil) = true")
	}
}
