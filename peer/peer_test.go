package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"shoal.dev/shoal/client"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/p2p"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

func memberStates(n *peer.Node) map[string]string {
	out := map[string]string{}
	for _, m := range n.Members() {
		out[m.Name] = m.State
	}
	return out
}

func TestFiveNodeCluster(t *testing.T) {
	c := clustertest.Start(t, 5, clustertest.Options{})

	// Everyone sees five alive members, with data-plane details.
	for _, n := range c.Running() {
		ms := n.Members()
		if len(ms) != 5 {
			t.Fatalf("%s lists %d members", n.Name(), len(ms))
		}
		for _, m := range ms {
			if m.State != "alive" || m.PeerID == "" || m.HTTP == "" || len(m.P2PAddrs) == 0 {
				t.Fatalf("%s sees incomplete member %+v", n.Name(), m)
			}
		}
	}

	// The data plane works between every pair.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range c.Running() {
		for _, b := range c.Running() {
			res, err := a.Ping(ctx, b.Name())
			if err != nil {
				t.Fatalf("ping %s -> %s: %v", a.Name(), b.Name(), err)
			}
			if res.Name != b.Name() || res.PeerID != b.PeerID() {
				t.Fatalf("ping %s -> %s answered by %s (%s)", a.Name(), b.Name(), res.Name, res.PeerID)
			}
		}
	}

	// A record written on one node reaches every node.
	if _, err := c.Node(2).Records().Put("test/hello", []byte("world")); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		for _, n := range c.Running() {
			r, ok := n.Records().Get("test/hello")
			if !ok || !bytes.Equal(r.Value, []byte("world")) {
				return fmt.Errorf("%s lacks the record", n.Name())
			}
		}
		return nil
	})

	// A node stopped without leaving is marked dead by the rest within the
	// failure detection time.
	detect := c.Node(0).FailureDetectionTime()
	victim := c.Node(4).Name()
	c.Kill(4)
	start := time.Now()
	clustertest.Eventually(t, detect, func() error {
		for _, n := range c.Running() {
			if s := memberStates(n)[victim]; s != "dead" {
				return fmt.Errorf("%s sees %s as %q", n.Name(), victim, s)
			}
			if n.Ring().Has(victim) {
				return fmt.Errorf("%s still has %s on its ring", n.Name(), victim)
			}
		}
		return nil
	})
	t.Logf("%s marked dead by all in %s (bound %s)", victim, time.Since(start).Round(time.Millisecond), detect)

	// A node that leaves gracefully is seen as left, not dead.
	leaver := c.Node(3).Name()
	c.Leave(3)
	clustertest.Eventually(t, 10*time.Second, func() error {
		for _, n := range c.Running() {
			if s := memberStates(n)[leaver]; s != "left" {
				return fmt.Errorf("%s sees %s as %q", n.Name(), leaver, s)
			}
		}
		return nil
	})

	// Restarted on its data dir, a node keeps its peer ID and its records.
	oldID := c.Node(1).PeerID()
	c.Kill(1)
	n := c.Restart(1)
	if n.PeerID() != oldID {
		t.Fatalf("peer ID changed across restart: %s -> %s", oldID, n.PeerID())
	}
	if r, ok := n.Records().Get("test/hello"); !ok || string(r.Value) != "world" {
		t.Fatal("record lost across restart")
	}
	c.WaitAlive(3, 20*time.Second)
	start = time.Now()
	clustertest.Eventually(t, 20*time.Second, func() error {
		_, err := c.Node(0).Ping(ctx, n.Name())
		return err
	})
	t.Logf("restarted node reachable over the data plane after %s", time.Since(start).Round(time.Millisecond))
}

func TestAPI(t *testing.T) {
	c := clustertest.Start(t, 2, clustertest.Options{})
	n := c.Node(0)
	ctx := context.Background()

	// Without the token the API refuses, except for health.
	anon, err := client.New(n.HTTPURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Health(ctx); err != nil {
		t.Fatalf("health without token: %v", err)
	}
	var apiErr *client.Error
	if _, err := anon.Members(ctx); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("members without token: %v", err)
	}
	wrong, _ := client.New(n.HTTPURL(), secret.Generate().APIToken())
	if _, err := wrong.Members(ctx); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("members with a wrong token: %v", err)
	}

	cl, _ := client.New(n.HTTPURL(), c.Config(0).Secret.APIToken())
	ms, err := cl.Members(ctx)
	if err != nil || len(ms) != 2 {
		t.Fatalf("members: %v %v", ms, err)
	}
	o, err := cl.Owners(ctx, "some/key", 5)
	if err != nil || len(o.Owners) != 2 {
		t.Fatalf("owners capped at cluster size: %+v %v", o, err)
	}
	if want := n.Ring().Owners("some/key", 2); fmt.Sprint(want) != fmt.Sprint(o.Owners) {
		t.Fatalf("owners %v, ring says %v", o.Owners, want)
	}
	p, err := cl.Ping(ctx, c.Node(1).Name())
	if err != nil || p.Node != c.Node(1).Name() {
		t.Fatalf("ping: %+v %v", p, err)
	}
	if _, err := cl.Ping(ctx, "nosuchnode"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("ping unknown node: %v", err)
	}

	// Unreachable agents and bad addresses are clear errors.
	if _, err := client.New("not a url", ""); err == nil {
		t.Fatal("bad address accepted")
	}
	dead, _ := client.New("http://127.0.0.1:1", "")
	if _, err := dead.Health(ctx); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("unreachable agent: %v", err)
	}
}

// TestBlockRequestWithoutSecret: a peer outside the cluster's private
// network cannot open a block stream, not even with a direct plane of its
// own and the target's direct addresses (the direct plane admits only
// members named by the secret-keyed gossip), and the node goes on serving.
func TestBlockRequestWithoutSecret(t *testing.T) {
	c := clustertest.Start(t, 2, clustertest.Options{})
	target := c.Node(0)
	if len(target.DirectAddrs()) == 0 {
		t.Fatal("the node runs no direct plane")
	}
	for _, psk := range [][]byte{nil, secret.Generate().NetworkKey()} {
		h, err := p2p.New(p2p.Config{PSK: psk, Name: "outsider", DirectListenAddrs: []string{p2p.DefaultListenAddr}})
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, m := range target.Members() {
			if m.Name == target.Name() {
				addrs = m.P2PAddrs
			}
		}
		if err := h.AddPeer(target.PeerID(), addrs); err != nil {
			t.Fatal(err)
		}
		if err := h.SetDirect(target.PeerID(), target.DirectAddrs()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = h.NewStream(ctx, target.PeerID(), blockstore.Protocol)
		cancel()
		h.Close()
		if !errors.Is(err, p2p.ErrNotInNetwork) {
			t.Fatalf("outsider (psk %v) opened a block stream: %v", psk != nil, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Node(1).Ping(ctx, target.Name()); err != nil {
		t.Fatalf("node unhealthy after the outsiders: %v", err)
	}
}
