package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// TestMembersUseTheDirectPlane: the copies of a put at R = 3 go over the
// direct plane (TLS without the private network's XSalsa20) between
// members that announce one, and over the private network to a member that
// does not (as a release of wire generation 1 does not), and every copy
// reads back.
func TestMembersUseTheDirectPlane(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		if i == 2 {
			cfg.P2PDirectAddrs = []string{"off"}
		}
	}})
	if len(c.Node(2).DirectAddrs()) != 0 {
		t.Fatal("node 2 runs a direct plane with --p2p-direct off")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A member reached before it has admitted us (its gossip a moment
	// behind ours) is reached over the private network for a while: wait
	// until nodes 0 and 1 reach each other directly.
	for _, pair := range [][2]int{{0, 1}, {1, 0}} {
		from, to := c.Node(pair[0]), c.Node(pair[1])
		clustertest.Eventually(t, 30*time.Second, func() error {
			before := metric(t, from, "shoal_p2p_streams_direct_total")
			if _, err := from.Ping(ctx, to.Name()); err != nil {
				return err
			}
			if metric(t, from, "shoal_p2p_streams_direct_total") == before {
				return fmt.Errorf("%s pinged %s over the private network", from.Name(), to.Name())
			}
			return nil
		})
	}
	data := corpus(21, 3<<20)
	for i := 0; i < 3; i++ {
		p := "/direct" + string(rune('0'+i))
		if _, err := c.Node(i).FS().Create(ctx, p, bytes.NewReader(data), blockstore.CreateOptions{BlockSize: 1 << 20, Replication: 3}); err != nil {
			t.Fatalf("put through node %d: %v", i, err)
		}
	}
	if n := metric(t, c.Node(2), "shoal_p2p_streams_direct_total"); n != 0 {
		t.Errorf("node 2, without a direct plane, opened %d direct streams", n)
	}
	if n := metric(t, c.Node(2), "shoal_p2p_streams_private_total"); n < 3 {
		t.Errorf("node 2 opened %d streams over the private network, want at least one per block", n)
	}
	for i := 0; i < 2; i++ {
		if n := metric(t, c.Node(i), "shoal_p2p_streams_direct_total"); n < 3 {
			t.Errorf("node %d opened %d direct streams, want at least one per block to the other direct node", i, n)
		}
		if n := metric(t, c.Node(i), "shoal_p2p_streams_private_total"); n == 0 {
			t.Errorf("node %d opened no stream over the private network to node 2", i)
		}
	}
	// Every node holds a verified copy of every block (R = 3 on 3 nodes),
	// and the file reads back.
	for j := 0; j < 3; j++ {
		p := "/direct" + string(rune('0'+j))
		fs := c.Node(j).FS()
		f, err := fs.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := fs.WriteTo(ctx, f, &got); err != nil || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("read %s back through node %d: %d bytes, %v", p, j, got.Len(), err)
		}
		m, err := fs.Manifest(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range m.Blocks {
			for i := 0; i < 3; i++ {
				r, _, err := c.Node(i).FS().Store().Open(b.ID, 0)
				if err != nil {
					t.Fatalf("node %d's copy of a block of %s: %v", i, p, err)
				}
				r.Close()
			}
		}
	}
}
