package peer_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// smallDisk makes a data dir whose sub (e.g. "blocks") is a tmpfs of size
// bytes, unmounted when the test ends. It skips the test when not root.
func smallDisk(t *testing.T, sub string, size int64) (dataDir, mount string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dataDir = t.TempDir()
	mount = filepath.Join(dataDir, sub)
	if err := os.MkdirAll(mount, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), fmt.Sprintf("shoaltest%d", os.Getpid()), mount).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mount).CombinedOutput(); err != nil {
			t.Errorf("unmount the test's tmpfs at %s: %v %s", mount, err, out)
		}
	})
	return dataDir, mount
}

// ballast fills dir's file system until about left bytes are free. The
// node on it may store blocks meanwhile, so it fills in steps, looking at
// the free space before each, and an ENOSPC (the node took the room first)
// gives back left bytes of the ballast rather than failing the test.
func ballast(t *testing.T, dir string, left int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "ballast"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zeros := make([]byte, 256<<10)
	for {
		u, err := disk.SysStatfs(dir)
		if err != nil {
			t.Fatal(err)
		}
		if u.Free <= left {
			return
		}
		_, err = f.Write(zeros[:min(u.Free-left, int64(len(zeros)))])
		if errors.Is(err, syscall.ENOSPC) {
			fi, serr := f.Stat()
			if serr != nil {
				t.Fatal(serr)
			}
			if err := f.Truncate(max(fi.Size()-left, 0)); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// metric reads one value from a node's /metrics.
func metric(t *testing.T, n *peer.Node, name string) int64 {
	t.Helper()
	resp, err := http.Get(n.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// waitLow waits until node `via` sees member name low on disk.
func waitLow(t *testing.T, via *peer.Node, name string) peer.Member {
	t.Helper()
	var got peer.Member
	clustertest.Eventually(t, 20*time.Second, func() error {
		for _, m := range via.Members() {
			if m.Name == name && m.LowDisk {
				got = m
				return nil
			}
		}
		return fmt.Errorf("%s does not see %s low on disk yet", via.Name(), name)
	})
	return got
}

// tmpEmpty asserts a node's block store keeps no half-written file.
func tmpEmpty(t *testing.T, dataDir string) {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dataDir, "blocks", "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 0 {
		t.Errorf("%d half-written files in %s/blocks/tmp", len(des), dataDir)
	}
}

// copies waits until every block of p has at least want holders, none of
// them in not.
func copies(t *testing.T, n *peer.Node, p string, want int, not ...string) {
	t.Helper()
	clustertest.Eventually(t, 60*time.Second, func() error {
		f, err := n.FS().Stat(p)
		if err != nil {
			return err
		}
		locs, err := n.FS().Locate(context.Background(), f)
		if err != nil {
			return err
		}
		for _, l := range locs {
			if len(l.Holders) < want {
				return fmt.Errorf("block %s of %s on %v, want %d copies", l.ID[:12], p, l.Holders, want)
			}
			for _, x := range not {
				if slices.Contains(l.Holders, x) {
					return fmt.Errorf("block %s of %s on %v, none should be on %s", l.ID[:12], p, l.Holders, x)
				}
			}
		}
		return nil
	})
}

// TestDiskFullOnPutAndRepair: real ENOSPC on two of five real nodes. node4
// runs out of space during a put at R=3: the put succeeds, every block has
// 3 copies, node4 keeps nothing half-written and tells the cluster it is
// low (members, health, metrics); the next put goes around it. node5 runs
// out during repair after node2 dies: it goes low too, and the copies it
// could not take land on the nodes with room, so every block of the R=2
// file is back at R (the R=3 one has only two nodes with room left).
func TestDiskFullOnPutAndRepair(t *testing.T) {
	dir4, mnt4 := smallDisk(t, "blocks", 8<<20)
	dir5, mnt5 := smallDisk(t, "blocks", 8<<20)
	none := disk.Reserve{}
	c := clustertest.Start(t, 5, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.RepairInterval = 300 * time.Millisecond
		switch i {
		case 3:
			cfg.DataDir, cfg.Reserve = dir4, &none // only the real ENOSPC stops a write
		case 4:
			cfg.DataDir, cfg.Reserve = dir5, &none
		}
	}})
	ctx := context.Background()
	ballast(t, mnt4, 200<<10) // room for two or three 64 KiB blocks
	data := corpus(21, 2<<20)
	if _, err := c.Node(0).FS().Create(ctx, "/a", bytes.NewReader(data), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 3}); err != nil {
		t.Fatalf("put with node4 out of space: %v", err)
	}
	got, err := readFile(c.Node(0), "/a")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(got, data))
	}
	if n := metric(t, c.Node(3), "shoal_disk_full_total"); n == 0 {
		t.Fatal("node4 never met ENOSPC: the test did not exercise a full disk")
	}
	if n := metric(t, c.Node(0), "shoal_block_writes_substituted_total"); n == 0 {
		t.Fatal("no block write was substituted")
	}
	copies(t, c.Node(0), "/a", 3)
	tmpEmpty(t, dir4)
	m := waitLow(t, c.Node(0), "node4")
	t.Logf("node4 as node1 sees it: free %d reserve %d low %v", m.DiskFree, m.DiskReserve, m.LowDisk)
	h, err := mustClient(t, c.Node(3)).Health(ctx)
	if err != nil || h.Status != "low_disk" || !h.LowDisk || !strings.Contains(h.Error, "low on disk") || !strings.Contains(h.Error, mnt4) {
		t.Fatalf("health of node4: %+v, %v", h, err)
	}
	if metric(t, c.Node(3), "shoal_disk_low") != 1 || metric(t, c.Node(3), "shoal_disk_free_bytes") > 1<<20 {
		t.Fatal("node4's metrics do not say it is low on disk")
	}
	t.Logf("health: %s", h.Error)

	// /r at R=2 goes around node4, which says it is low.
	r := corpus(22, 2<<20)
	if _, err := c.Node(0).FS().Create(ctx, "/r", bytes.NewReader(r), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 2}); err != nil {
		t.Fatal(err)
	}
	copies(t, c.Node(0), "/r", 2, "node4")

	// node5 fills up; node2 dies: repair must place node2's copies on
	// nodes with room. node5 fetches what it owns until ENOSPC, then goes
	// low and node1 and node3 take its share.
	ballast(t, mnt5, 30<<10)
	before := metric(t, c.Node(4), "shoal_disk_full_total")
	c.Kill(1)
	copies(t, c.Node(0), "/r", 2)
	copies(t, c.Node(0), "/a", 2)
	if metric(t, c.Node(4), "shoal_disk_full_total") == before {
		t.Fatal("node5 met no ENOSPC during repair: the test did not exercise it")
	}
	waitLow(t, c.Node(0), "node5")
	tmpEmpty(t, dir5)
	for p, want := range map[string][]byte{"/a": data, "/r": r} {
		got, err = readFile(c.Node(2), p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %s after repair: %v", p, err)
		}
	}
	// A put through the full node says so in Shoal's words.
	_, err = c.Node(3).FS().Create(ctx, "/b", bytes.NewReader(data[:1<<20]), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize})
	if !errors.Is(err, disk.ErrFull) || !strings.HasPrefix(err.Error(), "put /b: node4 ran out of disk space writing "+mnt4) {
		t.Fatalf("put through the full node: %v", err)
	}
	if _, err := c.Node(0).FS().Stat("/b"); err == nil {
		t.Fatal("the failed put is visible")
	}
	tmpEmpty(t, dir4)
}

// TestReduceCommitOnFullDisk: node3's block store fills up (real ENOSPC)
// while a job runs: reducers whose output it spools fail as node faults,
// are retried on nodes with room, and the job's output equals the
// sequential run.
func TestReduceCommitOnFullDisk(t *testing.T) {
	dir3, mnt3 := smallDisk(t, "blocks", 16<<20)
	none := disk.Reserve{}
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		if i == 2 {
			cfg.DataDir, cfg.Reserve = dir3, &none
		}
	}})
	ctx := context.Background()
	data := corpus(23, 1<<20)
	put(t, c.Node(0), "/in", data, blockstore.MinBlockSize)
	ballast(t, mnt3, 8<<10)
	rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: "/out", Reducers: 6})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(1), rec.ID, 120*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	waitFiles(t, c.Node(0), "/out", 7)
	got, _ := readParts(t, c.Node(0), "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in": data}, []string{"/in"}, 6); !bytes.Equal(got, want) {
		t.Fatal("output differs from the sequential run")
	}
	if metric(t, c.Node(2), "shoal_disk_full_total") == 0 {
		t.Fatal("node3 met no ENOSPC: the test did not exercise a full disk")
	}
	waitLow(t, c.Node(0), "node3")
	tmpEmpty(t, dir3)
	t.Logf("failed reduces %d, failed maps %d", st.Counters[job.NUM_FAILED_REDUCES], st.Counters[job.NUM_FAILED_MAPS])
}

func mustClient(t *testing.T, n *peer.Node) *client.Client {
	t.Helper()
	cl, err := client.New(n.HTTPURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func readFile(n *peer.Node, p string) ([]byte, error) {
	f, err := n.FS().Stat(p)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = n.FS().WriteTo(context.Background(), f, &b)
	return b.Bytes(), err
}

// TestPutGoesAroundALowAgent: the agent a client puts through is below its
// reserve (an injected statfs: 10 MiB free, 64 MiB reserve), so it cannot
// spool a block; the resumable put says so and goes on through the next
// member, and the file reads back identical with no copy on the low node.
// With only low agents the put fails in their words and stores nothing.
func TestPutGoesAroundALowAgent(t *testing.T) {
	reserve := disk.Reserve{Bytes: 64 << 20}
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		if i == 0 {
			cfg.Reserve = &reserve
			cfg.Statfs = func(string) (disk.Usage, error) { return disk.Usage{Free: 10 << 20, Total: 100 << 30}, nil }
		}
	}})
	ctx := context.Background()
	tok := c.Config(0).Secret.APIToken()
	var clients []*client.Client
	for i := 0; i < 3; i++ {
		cl, err := client.New(c.Node(i).HTTPURL(), tok)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	waitLow(t, c.Node(1), "node1")
	data := corpus(31, 1<<20)
	// Over HTTP, and with the file handed to each agent through its local
	// socket.
	for _, local := range []bool{false, true} {
		t.Run(fmt.Sprintf("local=%v", local), func(t *testing.T) {
			src := func() io.ReaderAt {
				if !local {
					return bytes.NewReader(data)
				}
				return localFile(t, data)
			}
			suffix := fmt.Sprint(local)
			var whys []error
			info, err := client.PutLocal(ctx, clients, "/around"+suffix, src(), int64(len(data)),
				client.PutOptions{BlockSize: 64 << 10, Replication: 2}, nil,
				func(from, to *client.Client, at int64, why error) { whys = append(whys, why) })
			if err != nil {
				t.Fatalf("put through a low agent: %v", err)
			}
			var ae *client.Error
			if len(whys) != 1 || !errors.As(whys[0], &ae) || !ae.LowDisk || ae.Status != http.StatusInsufficientStorage ||
				!strings.Contains(ae.Message, "node1 is low on disk: 10 MiB free at ") {
				t.Fatalf("failovers: %v", whys)
			}
			if info.File.Size != int64(len(data)) {
				t.Fatalf("put %+v", info.File)
			}
			got, err := readFile(c.Node(1), "/around"+suffix)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back: %v", err)
			}
			copies(t, c.Node(1), "/around"+suffix, 2, "node1")

			// Only the low agent: the put fails in its words, nothing is stored.
			_, err = client.PutLocal(ctx, clients[:1], "/nowhere"+suffix, src(), int64(len(data)),
				client.PutOptions{BlockSize: 64 << 10, Replication: 2}, nil, nil)
			// Blocks go out several at a time, so the one refused first may be any.
			if err == nil || !regexp.MustCompile(`^put /nowhere`+suffix+`: no agent had room to take block \d+ \(the last said: block \d+ of /nowhere`+suffix+`: node1 is low on disk`).MatchString(err.Error()) {
				t.Fatalf("put through only a low agent: %v", err)
			}
			if _, err := c.Node(1).FS().Stat("/nowhere" + suffix); err == nil {
				t.Fatal("the refused put is visible")
			}
		})
	}
}
