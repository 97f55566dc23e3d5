package gossip

import (
	"testing"
	"time"
)

// TestRestartOnNewPort: a node that crashed and comes back under its name
// on another gossip port is alive to its peers as soon as they have seen
// it dead, not after they forget it (GossipToTheDeadTime, here a minute).
func TestRestartOnNewPort(t *testing.T) {
	slowForget := func(_ int, c *Config) { c.PushPullInterval = time.Minute }
	nodes := startCluster(t, 3, slowForget)
	victim := nodes[2]
	oldAddr := victim.Addr()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes[:2] {
		eventually(t, 15*time.Second, func() bool { s, _ := memberState(n, victim.Name()); return s == StateDead },
			"%s sees %s dead", n.Name(), victim.Name())
	}
	cfg := testConfig(t, victim.Name())
	slowForget(0, &cfg)
	again := startNode(t, cfg)
	if again.Addr() == oldAddr {
		t.Skip("the OS gave the restarted node its old port")
	}
	joinOK(t, again, nodes[0].Addr())
	for _, n := range nodes[:2] {
		eventually(t, 10*time.Second, func() bool {
			for _, m := range n.Alive() {
				if m.Name == victim.Name() && m.Addr == again.Addr() {
					return true
				}
			}
			return false
		}, "%s sees %s alive at its new address %s: %v", n.Name(), victim.Name(), again.Addr(), n.Members())
	}
}
