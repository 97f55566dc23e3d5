package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

// genText makes n bytes of newline-separated words.
func genText(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while shoals of fish swim by in the deep blue sea")
	var b bytes.Buffer
	b.Grow(n)
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(10) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func genBinary(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// fsEnv runs CLI commands against one node of a local cluster.
type fsEnv struct {
	t   *testing.T
	lc  *localCluster
	dir string // scratch for local files
}

// startFSEnv starts an n-node local cluster and returns the env to drive
// it and its status (node name -> pid, HTTP URL).
func startFSEnv(t *testing.T, n int) (*fsEnv, map[string][2]string) {
	t.Helper()
	lc := newLocalCluster(t)
	if r := lc.script("start", fmt.Sprint(n)); r.code != 0 {
		t.Fatalf("start %d: %s%s", n, r.stdout, r.stderr)
	}
	return &fsEnv{t: t, lc: lc, dir: t.TempDir()}, lc.status()
}

// genText writes size of generated text (`shoal gen text`) to a local file
// named name in the scratch dir and returns its path.
func (e *fsEnv) genText(name, size string, seed int) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if r := shoal(e.t, nil, "gen", "text", "--bytes", size, "--seed", fmt.Sprint(seed), "--output", p); r.code != 0 {
		e.t.Fatal(r.stderr)
	}
	return p
}

func (e *fsEnv) cli(url string, args ...string) result {
	e.t.Helper()
	full := append(append([]string{}, args...), "--addr", url)
	return shoal(e.t, []string{"SHOAL_SECRET_FILE=" + e.lc.secretFile()}, full...)
}

func (e *fsEnv) mustCLI(url string, args ...string) string {
	e.t.Helper()
	r := e.cli(url, args...)
	if r.code != 0 {
		e.t.Fatalf("shoal %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// catEquals reads p through url into a local file and compares.
func (e *fsEnv) catEquals(url, p string, want []byte) error {
	local := filepath.Join(e.dir, "got")
	r := e.cli(url, "fs", "get", p, local)
	if r.code != 0 {
		return fmt.Errorf("get %s via %s: %s", p, url, r.stderr)
	}
	got, err := os.ReadFile(local)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s via %s: %d bytes differ from the %d put", p, url, len(got), len(want))
	}
	return nil
}

// healthy checks through url that every block of p sits on exactly its
// owners, at full replication.
func (e *fsEnv) healthy(url, p string, repl int) error {
	st, err := clientFor(e.t, e.lc, url).StatBlocks(context.Background(), p)
	if err != nil {
		return err
	}
	for _, b := range st.Blocks {
		h, o := slices.Clone(b.Holders), slices.Clone(b.Owners)
		slices.Sort(h)
		slices.Sort(o)
		if len(h) != repl || !slices.Equal(h, o) {
			return fmt.Errorf("%s block %s: holders %v, owners %v", p, b.ID[:12], h, o)
		}
	}
	return nil
}

// clientFor is an API client for url holding the cluster's secret.
func clientFor(t testing.TB, lc *localCluster, url string) *client.Client {
	sec, err := secret.Load(lc.secretFile())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(url, sec.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestFSProcess(t *testing.T) {
	e, st := startFSEnv(t, 5)
	lc := e.lc
	url := st["node1"][1]

	files := map[string][]byte{
		"/empty":         {},
		"/one":           []byte("x"),
		"/text/words":    genText(1, 5<<20+123),
		"/bin/random":    genBinary(2, 3<<20+7),
		"/text/one-line": bytes.Repeat([]byte("y"), 2<<20), // longer than a block, no newline
	}
	for p, data := range files {
		local := filepath.Join(e.dir, strings.ReplaceAll(p, "/", "_"))
		os.WriteFile(local, data, 0o600)
		e.mustCLI(url, "fs", "put", local, p, "--block-size", "1MB")
	}
	for p, data := range files {
		if err := e.catEquals(st["node3"][1], p, data); err != nil {
			t.Fatal(err)
		}
	}
	// cat of a glob concatenates in path order.
	out := e.mustCLI(st["node2"][1], "fs", "cat", "/text/*")
	if out != string(files["/text/one-line"])+string(files["/text/words"]) {
		t.Fatal("cat of /text/* differs")
	}
	// Every block but the last of a text file ends at a newline.
	stat, err := clientFor(t, lc, url).StatBlocks(context.Background(), "/text/words")
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	words := files["/text/words"]
	for _, b := range stat.Blocks[1 : len(stat.Blocks)-1] {
		off += b.Size
		if words[off-1] != '\n' {
			t.Fatalf("a block of /text/words ends mid-line at %d", off)
		}
	}

	// kill -9 two nodes: everything still reads, and within 60s every
	// block is back at 3 replicas on the survivors.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	names := []string{"node1", "node2", "node3", "node4", "node5"}
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	killed, alive := names[:2], names[2:]
	t.Logf("killing %v", killed)
	for _, n := range killed {
		var pid int
		fmt.Sscan(st[n][0], &pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	url = st[alive[0]][1]
	for p, data := range files {
		if err := e.catEquals(url, p, data); err != nil {
			t.Fatalf("after kill -9 of %v: %v", killed, err)
		}
	}
	start := time.Now()
	clustertest.Eventually(t, 60*time.Second, func() error {
		for p := range files {
			if err := e.healthy(url, p, 3); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("back at 3 replicas %s after the kill", time.Since(start).Round(time.Millisecond))

	// Flip a byte of a block on one node's disk: reads stay right, the
	// copy is counted corrupt and replaced.
	victimNode := alive[1]
	blockFile := anyBlockFile(t, filepath.Join(lc.dir, victimNode, "blocks"), stat)
	raw, _ := os.ReadFile(blockFile)
	raw[len(raw)/3] ^= 0x55
	os.WriteFile(blockFile, raw, 0o600)
	if err := e.catEquals(st[victimNode][1], "/text/words", words); err != nil {
		t.Fatalf("read through a corrupt copy: %v", err)
	}
	// A get reads each block from whichever holder comes first, which
	// need not be the victim; reading the block from the victim itself
	// must be refused, whether this read finds the flipped byte or the
	// get above already did and quarantined the copy. The victim checks
	// each chunk before sending it: the flipped byte is past the first
	// chunk, so the refusal may come as the body cut short.
	victim := clientFor(t, lc, st[victimNode][1])
	corruptID := filepath.Base(blockFile)
	if rc, _, err := victim.GetBlock(context.Background(), corruptID, 0); err == nil {
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Fatalf("%s served block %s (%d bytes) after a byte of it was flipped", victimNode, corruptID[:12], len(got))
		}
		if len(got) > len(raw)/3 {
			t.Fatalf("%s served %d bytes of block %s, past its flipped byte %d", victimNode, len(got), corruptID[:12], len(raw)/3)
		}
		t.Logf("%s cut its corrupt copy short at byte %d: %v", victimNode, len(got), err)
	} else {
		t.Logf("%s refuses its corrupt copy: %v", victimNode, err)
	}
	metrics, _ := victim.Metrics(context.Background())
	if !strings.Contains(metrics, "shoal_blocks_corrupt_total 1\n") {
		t.Fatalf("corruption not counted:\n%s", metrics)
	}
	clustertest.Eventually(t, 60*time.Second, func() error { return e.healthy(url, "/text/words", 3) })

	// A node joins (node6, and the two killed ones return): it receives the
	// blocks it owns, and no block drops below 3 copies meanwhile. Copies
	// are counted on the nodes' disks, which no view of the ring can skew.
	var ids []string
	for p := range files {
		s, err := clientFor(t, lc, url).StatBlocks(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range s.Blocks {
			ids = append(ids, b.ID)
		}
	}
	minCopies := func() (int, string) {
		least, which := 1<<30, ""
		for _, id := range ids {
			n := 0
			for i := 1; i <= 6; i++ {
				if _, err := os.Stat(filepath.Join(lc.dir, fmt.Sprintf("node%d", i), "blocks", id[:2], id)); err == nil {
					n++
				}
			}
			if n < least {
				least, which = n, id
			}
		}
		return least, which
	}
	done := make(chan result)
	go func() { done <- lc.script("start", "6") }()
	var joined result
	var dropped string
	for waiting := true; waiting; {
		select {
		case joined = <-done:
			waiting = false
		default:
			if least, id := minCopies(); least < 3 && dropped == "" {
				dropped = fmt.Sprintf("block %s fell to %d copies during the join", id[:12], least)
			}
		}
	}
	// Failing only once the start is over, so the cleanup's stop sees
	// every node it started.
	if dropped != "" {
		t.Fatal(dropped)
	}
	if joined.code != 0 {
		t.Fatalf("start 6: %s", joined.stderr)
	}
	clustertest.Eventually(t, 60*time.Second, func() error {
		if least, id := minCopies(); least < 3 {
			t.Fatalf("block %s fell to %d copies during rebalancing", id[:12], least)
		}
		for p := range files {
			if err := e.healthy(url, p, 3); err != nil {
				return err
			}
		}
		return nil
	})

	// Stop the whole cluster and start it on the same data: every file
	// reads back identical.
	if r := lc.script("stop"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := lc.script("start"); r.code != 0 {
		t.Fatalf("restart: %s", r.stderr)
	}
	st = lc.status()
	for p, data := range files {
		if err := e.catEquals(st["node4"][1], p, data); err != nil {
			t.Fatalf("after a full restart: %v", err)
		}
	}

	// Bad input: clear errors, nothing changed.
	url = st["node2"][1]
	local := filepath.Join(e.dir, "small")
	os.WriteFile(local, []byte("small\n"), 0o600)
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"fs", "put", local, "relative/path"}, "must be absolute"},
		{[]string{"fs", "put", local, "/a/../b"}, `".." is not allowed`},
		{[]string{"fs", "put", local, ""}, "empty path"},
		{[]string{"fs", "put", local, "/" + strings.Repeat("n", 300)}, "longer than 255"},
		{[]string{"fs", "put", local, "/one"}, "exists"},
		{[]string{"fs", "put", local, "/new", "--block-size", "1K"}, "minimum"},
		{[]string{"fs", "put", filepath.Join(e.dir, "missing"), "/new"}, "no such file"},
		{[]string{"fs", "cat", "/missing"}, "no such file"},
		{[]string{"fs", "rm", "/text"}, "use -r"},
		{[]string{"fs", "stat", "/missing"}, "no such file"},
	}
	for _, b := range bad {
		r := e.cli(url, b.args...)
		if r.code == 0 || !strings.Contains(r.stderr, b.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("shoal %v: exit %d, stderr %q, want one line with %q", b.args, r.code, r.stderr, b.want)
		}
	}
	ls := e.mustCLI(url, "fs", "ls", "/")
	for _, want := range []string{"/empty", "/one", "/text/", "/bin/"} {
		if !strings.Contains(ls, want) {
			t.Fatalf("ls / lacks %s after bad input:\n%s", want, ls)
		}
	}
	if strings.Contains(ls, "/new") || strings.Contains(ls, "/a") {
		t.Fatalf("bad input left something:\n%s", ls)
	}
	if err := e.catEquals(url, "/one", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// anyBlockFile finds a data block of the stat'd file in a node's block dir.
func anyBlockFile(t *testing.T, dir string, st peer.StatInfo) string {
	t.Helper()
	for _, b := range st.Blocks[1:] {
		p := filepath.Join(dir, b.ID[:2], b.ID)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no block of %s in %s", st.File.Path, dir)
	return ""
}

// TestFSLargeFile puts and reads back 1 GB with 1 MB blocks on 3 nodes.
func TestFSLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GB round trip")
	}
	e, st := startFSEnv(t, 3)
	lc := e.lc
	input := e.genText("big.txt", "1GB", 3)
	e.mustCLI(st["node1"][1], "fs", "put", input, "/big.txt", "--block-size", "1MB")
	out := filepath.Join(e.dir, "back.txt")
	e.mustCLI(st["node3"][1], "fs", "get", "/big.txt", out)
	if a, b := fileSumTB(t, input), fileSumTB(t, out); a != b {
		t.Fatalf("1 GB read back differs: %s vs %s", a, b)
	}
	stat, err := clientFor(t, lc, st["node2"][1]).StatBlocks(context.Background(), "/big.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(stat.Blocks) < 1025 { // the manifest and at least 1024 blocks
		t.Fatalf("%d blocks for 1 GB in 1 MB blocks", len(stat.Blocks)-1)
	}
}
