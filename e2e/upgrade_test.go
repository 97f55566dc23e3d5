package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

// previousRelease is the commit TestRollingUpgrade starts its cluster
// from: the last release landed before this round's work (main at the
// round's start, d2f4ef8). Move it to the new release's commit when a
// round ends, so that every release is shown to upgrade from the one
// before it (the skew policy: releases N and N−1 interoperate).
const previousRelease = "d2f4ef8bf4b54e45d2acb6cecd5955a623581466"

// upgradeNodes is the rolling-upgrade cluster's size.
const upgradeNodes = 4

// TestRollingUpgrade: 4 agents of the previous release's binary (built
// from previousRelease out of this checkout's own history) are replaced
// one by one by the current build — a graceful stop, then the new binary
// on the same data dir and ports — while a streaming word count runs and
// puts go on through every node that is up. The job is held by gates the
// test opens: its maps wait until half the nodes are new, its reduces until
// every node is; so it is running before the first node goes and ends
// only after the last came back. Afterwards: the job succeeded with the
// output of `job run wordcount --local` on the same input; every
// acknowledged put reads back identical; every block of every file is at
// R; `shoal members` showed both versions while they were mixed; and no
// node logged a member it cannot speak to.
func TestRollingUpgrade(t *testing.T) {
	oldBin := buildRelease(t, previousRelease)
	oldVersion, newVersion := binaryVersion(t, oldBin), binaryVersion(t, shoalBin)
	t.Logf("upgrading %d nodes from %s (commit %.7s) to %s (this build)", upgradeNodes, oldVersion, previousRelease, newVersion)

	begin := time.Now()
	phase := func(what string) { t.Logf("%v: %s", time.Since(begin).Round(100*time.Millisecond), what) }
	c := newUpgradeCluster(t)
	c.start(0, oldBin)
	for i := 1; i < upgradeNodes; i++ {
		c.start(i, oldBin, c.nodes[0].gossip)
	}
	c.waitVersions(map[int]string{0: oldVersion, 1: oldVersion, 2: oldVersion, 3: oldVersion})

	// The input and the sequential run of the job over it.
	scratch := t.TempDir()
	input, want := localWordcount(t, scratch, "512KB", 17, 2)
	c.mustCLI(0, "fs", "put", input, "/in/corpus.txt", "--block-size", "64K", "--replication", "3")

	// The job: a word count whose commands first say they started, then
	// wait for their gate.
	gates := filepath.Join(scratch, "gates")
	if err := os.Mkdir(gates, 0o755); err != nil {
		t.Fatal(err)
	}
	gated := func(kind, command string) string {
		return fmt.Sprintf(": > %s/%s-started.$$; while [ ! -e %s/%s-go ]; do sleep 0.1; done; %s", gates, kind, gates, kind, command)
	}
	open := func(kind string) {
		if err := os.WriteFile(filepath.Join(gates, kind+"-go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	started := func(kind string) error {
		m, _ := filepath.Glob(filepath.Join(gates, kind+"-started.*"))
		if len(m) == 0 {
			return fmt.Errorf("no %s of the job has started", kind)
		}
		return nil
	}
	id := strings.TrimSpace(c.mustCLI(upgradeNodes-1, "streaming", "--detach", "-input", "/in/corpus.txt", "-output", "/out/wc",
		"-mapper", gated("map", "python3 mapper.py"), "-reducer", gated("reduce", "python3 reducer.py"),
		"-file", script("mapper.py"), "-file", script("reducer.py"), "-numReduceTasks", "2"))
	clustertest.Eventually(t, 2*time.Minute, func() error { return started("map") })
	c.jobRunning(id, "its maps wait for their gate")
	phase("4 old nodes up, the input put, the job's maps started")

	// Puts, one after another, through each node that is up in turn.
	var (
		mu    sync.Mutex
		acked []ackedPut
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopPuts := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	t.Cleanup(stopPuts) // also when the test fails half-way
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			i := c.upNode(k)
			name := fmt.Sprintf("p%d", k)
			local := filepath.Join(scratch, name)
			if err := os.WriteFile(local, genText(uint64(k), 20_000+k*997%80_000), 0o600); err != nil {
				t.Error(err)
				return
			}
			if r := c.cli(i, "fs", "put", local, "/puts/"+name, "--block-size", "64K", "--replication", "3"); r.code != 0 {
				t.Logf("put /puts/%s through %s not acknowledged: %s", name, c.nodes[i].name, strings.TrimSpace(r.stderr))
				continue
			}
			mu.Lock()
			acked = append(acked, ackedPut{path: "/puts/" + name, local: local})
			mu.Unlock()
		}
	}()
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}

	// The upgrade, node by node; each comes back before the next goes,
	// and at least one put is acknowledged between two replacements.
	versions := map[int]string{0: oldVersion, 1: oldVersion, 2: oldVersion, 3: oldVersion}
	for i := range upgradeNodes {
		before := ackedNow()
		clustertest.Eventually(t, 2*time.Minute, func() error {
			if ackedNow() == before {
				return fmt.Errorf("no put acknowledged since %d", before)
			}
			return nil
		})
		c.replace(i, shoalBin)
		versions[i] = newVersion
		c.waitVersions(versions)
		phase(fmt.Sprintf("%s upgraded and seen by all", c.nodes[i].name))
		if i < upgradeNodes-1 {
			// Both releases are members now: `shoal members` on an old
			// node and on a new one shows each member's own.
			c.membersShow(upgradeNodes-1, versions)
			c.membersShow(0, versions)
		}
		switch i {
		case 1: // half the nodes are new: they speak to each other, the maps run, and the reduces start
			c.mixCheck(scratch, []int{0, 1}, []int{2, 3})
			phase("with two nodes of each release: pings and puts of replication 4 checked")
			open("map")
			clustertest.Eventually(t, 3*time.Minute, func() error {
				if err := started("reduce"); err != nil {
					return err
				}
				if s, err := c.client(0).Job(context.Background(), id); err != nil || s.MapsDone < s.Maps {
					return fmt.Errorf("maps not all done: %d/%d %v", s.MapsDone, s.Maps, err)
				}
				return nil
			})
			c.jobRunning(id, "its reduces wait for their gate")
			c.attemptsListed(id, 0, 3, 2, 3)
			phase("the maps done, the reduces started, the attempts listed alike through both releases")
		case upgradeNodes - 1:
			c.jobRunning(id, "its reduces still wait for their gate")
			open("reduce")
		}
	}
	before := ackedNow()
	clustertest.Eventually(t, 2*time.Minute, func() error {
		if ackedNow() == before {
			return fmt.Errorf("no put acknowledged after the upgrade")
		}
		return nil
	})
	stopPuts()
	phase(fmt.Sprintf("upgraded; %d puts acknowledged", len(acked)))

	// The job ends, succeeded, with the sequential run's output.
	var st struct{ state, err string }
	clustertest.Eventually(t, 5*time.Minute, func() error {
		s, err := c.client(1).Job(context.Background(), id)
		if err != nil {
			return err
		}
		if s.State == "running" {
			return fmt.Errorf("job %s still running: map %d/%d, reduce %d/%d", id, s.MapsDone, s.Maps, s.ReducesDone, s.Reducers)
		}
		st.state, st.err = s.State, s.Error
		return nil
	})
	if st.state != "succeeded" {
		c.dumpLogs()
		t.Fatalf("job %s %s: %s", id, st.state, st.err)
	}
	if got := c.mustCLI(2, "fs", "cat", "/out/wc/part-*"); got != want {
		t.Fatalf("job output (%d bytes) differs from the sequential run (%d bytes)", len(got), len(want))
	}

	phase("the job succeeded with the sequential run's output")

	// Every acknowledged put reads back identical, through another node.
	for k, p := range acked {
		wantB, err := os.ReadFile(p.local)
		if err != nil {
			t.Fatal(err)
		}
		if r := c.cli(k%upgradeNodes, "fs", "cat", p.path); r.code != 0 || r.stdout != string(wantB) {
			t.Errorf("%s: exit %d, %d bytes read back, %d put: %s", p.path, r.code, len(r.stdout), len(wantB), r.stderr)
		}
	}

	// Every block of every file (the input, the puts, the job's output and
	// its shipped files) is at R, on its owners.
	clustertest.Eventually(t, 3*time.Minute, func() error { return c.allAtR("/") })
	phase("every put read back, every block at R")

	for i, n := range c.nodes {
		if b, _ := os.ReadFile(n.logPath); strings.Contains(string(b), "cannot speak to it") {
			t.Errorf("%s logged a member it cannot speak to:\n%s", c.nodes[i].name, grepLines(string(b), "cannot speak to it"))
		}
	}
}

// buildRelease builds the shoal binary of commit from this checkout's own
// history, once: it is kept in bin/cache/shoal-COMMIT of the repository.
// It skips the test when the checkout has no history or lacks the commit.
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", repoRoot}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("no git to build the previous release %.7s with: %v", commit, err)
	}
	if _, err := git("rev-parse", "--git-dir"); err != nil {
		t.Skipf("this checkout has no git history, so the previous release %.7s cannot be built", commit)
	}
	if _, err := git("cat-file", "-e", commit+"^{commit}"); err != nil {
		shallow, _ := git("rev-parse", "--is-shallow-repository")
		t.Skipf("this checkout lacks commit %.7s, the previous release (shallow clone: %s), so it cannot be built", commit, shallow)
	}
	cache := filepath.Join(repoRoot, "bin", "cache")
	bin := filepath.Join(cache, "shoal-"+commit)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.MkdirTemp(cache, "src-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(src)
	tarball := filepath.Join(src, "src.tar")
	if out, err := git("archive", "--format=tar", "-o", tarball, commit); err != nil {
		t.Fatalf("git archive %.7s: %v\n%s", commit, err, out)
	}
	if out, err := exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("unpack %.7s: %v\n%s", commit, err, out)
	}
	start := time.Now()
	tmp := bin + ".tmp" + fmt.Sprint(os.Getpid())
	build := exec.Command("go", "build", "-ldflags", "-X shoal.dev/shoal/peer.Version="+commit[:7], "-o", tmp, ".")
	build.Dir = src
	build.Env = cleanEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the previous release %.7s: %v\n%s", commit, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the previous release %.7s in %v into %s", commit, time.Since(start).Round(time.Second), bin)
	return bin
}

// binaryVersion is the version a shoal binary prints.
func binaryVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || f[0] != "shoal" {
		t.Fatalf("%s --version: %q %v", bin, out, err)
	}
	return f[1]
}

// upgradeCluster is agent processes on this machine whose binaries can be
// swapped: each node keeps its data dir and its gossip, HTTP and libp2p
// ports across restarts.
type upgradeCluster struct {
	t      *testing.T
	dir    string
	secret string
	token  string

	mu    sync.Mutex
	nodes []*upgradeNode
}

type upgradeNode struct {
	name, dataDir, logPath string
	gossip, http, p2p      string // host:port, host:port, multiaddr; port 0 before the first start
	url                    string
	bin                    string
	down                   bool
	cmd                    *exec.Cmd
	exited                 chan error
}

func newUpgradeCluster(t *testing.T) *upgradeCluster {
	dir := t.TempDir()
	c := &upgradeCluster{t: t, dir: dir, secret: filepath.Join(dir, "secret")}
	r := shoal(t, nil, "keygen")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if err := os.WriteFile(c.secret, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	sec, err := secret.Load(c.secret)
	if err != nil {
		t.Fatal(err)
	}
	c.token = sec.APIToken()
	for i := range upgradeNodes {
		name := fmt.Sprintf("node%d", i+1)
		c.nodes = append(c.nodes, &upgradeNode{
			name: name, dataDir: filepath.Join(dir, name), logPath: filepath.Join(dir, name+".log"),
			gossip: "127.0.0.1:0", http: "127.0.0.1:0", p2p: "/ip4/127.0.0.1/tcp/0", down: true,
		})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.cmd != nil && !n.down {
				n.cmd.Process.Kill()
				<-n.exited
			}
		}
	})
	return c
}

// start runs node i's agent with bin, joining through join, and waits
// until it has written its agent.json (it is up and joined).
func (c *upgradeCluster) start(i int, bin string, join ...string) {
	c.t.Helper()
	n := c.nodes[i]
	os.Remove(filepath.Join(n.dataDir, "agent.json"))
	log, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer log.Close()
	fmt.Fprintf(log, "=== upgrade test: starting %s with %s\n", n.name, bin)
	args := []string{"agent", "--name", n.name, "--data-dir", n.dataDir, "--secret-file", c.secret, "--fast-gossip",
		"--bind", n.gossip, "--http", n.http, "--p2p", n.p2p, "--reserve", "0"}
	for _, j := range join {
		args = append(args, "--join", j)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	killOnTimeout(c.t, cmd)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.mu.Lock()
	n.cmd, n.exited, n.bin = cmd, exited, bin
	c.mu.Unlock()
	var info struct {
		Gossip string   `json:"gossip"`
		HTTP   string   `json:"http"`
		P2P    []string `json:"p2p"`
	}
	clustertest.Eventually(c.t, 90*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			b, _ := os.ReadFile(n.logPath)
			c.t.Fatalf("%s exited: %v\n%s", n.name, err, tail(string(b), 20))
		default:
		}
		b, err := os.ReadFile(filepath.Join(n.dataDir, "agent.json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &info)
	})
	u, err := url.Parse(info.HTTP)
	if err != nil || len(info.P2P) == 0 {
		c.t.Fatalf("%s agent.json: http %q, p2p %v", n.name, info.HTTP, info.P2P)
	}
	c.mu.Lock()
	n.gossip, n.http, n.url, n.p2p, n.down = info.Gossip, u.Host, info.HTTP, info.P2P[0], false
	c.mu.Unlock()
}

// replace stops node i gracefully (SIGTERM: it leaves the cluster) and
// starts bin on its data dir and ports, joining through the others.
func (c *upgradeCluster) replace(i int, bin string) {
	c.t.Helper()
	n := c.nodes[i]
	c.mu.Lock()
	n.down = true
	c.mu.Unlock()
	from, begin := filepath.Base(n.bin), time.Now()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.exited:
		if err != nil {
			c.t.Fatalf("%s did not stop cleanly on SIGTERM: %v", n.name, err)
		}
	case <-time.After(2 * time.Minute):
		c.t.Fatalf("%s did not stop within 2m of SIGTERM", n.name)
	}
	var join []string
	for j, o := range c.nodes {
		if j != i {
			join = append(join, o.gossip)
		}
	}
	c.start(i, bin, join...)
	c.t.Logf("replaced %s (%s -> %s): up again after %v", n.name, from, filepath.Base(bin), time.Since(begin).Round(100*time.Millisecond))
}

// upNode is the k-th node in turn, skipping one that is being replaced.
func (c *upgradeCluster) upNode(k int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for d := range upgradeNodes {
		if i := (k + d) % upgradeNodes; !c.nodes[i].down {
			return i
		}
	}
	return k % upgradeNodes
}

func (c *upgradeCluster) client(i int) *client.Client {
	c.t.Helper()
	c.mu.Lock()
	u := c.nodes[i].url
	c.mu.Unlock()
	cl, err := client.New(u, c.token)
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func (c *upgradeCluster) cli(i int, args ...string) result {
	c.t.Helper()
	c.mu.Lock()
	u := c.nodes[i].url
	c.mu.Unlock()
	return shoal(c.t, []string{"SHOAL_SECRET_FILE=" + c.secret}, append(append([]string{}, args...), "--addr", u)...)
}

func (c *upgradeCluster) mustCLI(i int, args ...string) string {
	c.t.Helper()
	r := c.cli(i, args...)
	if r.code != 0 {
		c.t.Fatalf("shoal %s through %s: exit %d: %s", strings.Join(args, " "), c.nodes[i].name, r.code, r.stderr)
	}
	return r.stdout
}

// waitVersions waits until every node sees every node alive with the
// version it runs, and able to speak to it.
func (c *upgradeCluster) waitVersions(want map[int]string) {
	c.t.Helper()
	clustertest.Eventually(c.t, 2*time.Minute, func() error {
		for i := range c.nodes {
			ms, err := c.client(i).Members(context.Background())
			if err != nil {
				return fmt.Errorf("%s: %v", c.nodes[i].name, err)
			}
			seen := map[string]peer.Member{}
			for _, m := range ms {
				seen[m.Name] = m
			}
			for j, v := range want {
				m := seen[c.nodes[j].name]
				if m.State != "alive" || m.Version != v || m.Incompatible != "" {
					return fmt.Errorf("%s sees %s %s, version %q (want %q) %s", c.nodes[i].name, c.nodes[j].name, m.State, m.Version, v, m.Incompatible)
				}
			}
		}
		return nil
	})
}

// membersShow checks that `shoal members` through node i prints each
// node's version in its VERSION column.
func (c *upgradeCluster) membersShow(i int, want map[int]string) {
	c.t.Helper()
	out := c.mustCLI(i, "members")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "VERSION") {
		c.t.Fatalf("shoal members through %s has no VERSION column:\n%s", c.nodes[i].name, out)
	}
	col := slices.Index(strings.Fields(lines[0]), "VERSION") - 1 // "PEER ID" is two words
	for j, v := range want {
		found := false
		for _, line := range lines[1:] {
			if f := strings.Fields(line); len(f) > col && f[0] == c.nodes[j].name {
				found = f[col] == v
			}
		}
		if !found {
			c.t.Fatalf("shoal members through %s does not show %s at version %s:\n%s", c.nodes[i].name, c.nodes[j].name, v, out)
		}
	}
}

// mixCheck shows that new nodes and old ones speak to each other (the
// repair and the job would mask a protocol that fails between them by
// working around it): each pings every other over the data plane; a file
// of replication 4 put through a new node and one put through an old node
// get every block onto all four, and each reads back identical through a
// node of the other release.
func (c *upgradeCluster) mixCheck(scratch string, newer, older []int) {
	c.t.Helper()
	for i := range c.nodes {
		for j := range c.nodes {
			if i != j {
				if p, err := c.client(i).Ping(context.Background(), c.nodes[j].name); err != nil || p.Node != c.nodes[j].name {
					c.t.Fatalf("%s pinging %s: %+v %v", c.nodes[i].name, c.nodes[j].name, p, err)
				}
			}
		}
	}
	for k, via := range [][2]int{{newer[0], older[0]}, {older[1], newer[1]}} {
		p := fmt.Sprintf("/mix/through-%s", c.nodes[via[0]].name)
		data := genText(uint64(1000+k), 150_000)
		local := filepath.Join(scratch, fmt.Sprintf("mix%d", k))
		if err := os.WriteFile(local, data, 0o600); err != nil {
			c.t.Fatal(err)
		}
		c.mustCLI(via[0], "fs", "put", local, p, "--block-size", "64K", "--replication", "4")
		clustertest.Eventually(c.t, time.Minute, func() error {
			st, err := c.client(via[1]).StatBlocks(context.Background(), p)
			if err != nil {
				return err
			}
			for _, b := range st.Blocks {
				if len(b.Holders) != upgradeNodes {
					return fmt.Errorf("%s block %.12s is on %v, want all %d nodes", p, b.ID, b.Holders, upgradeNodes)
				}
			}
			return nil
		})
		if got := c.mustCLI(via[1], "fs", "cat", p); got != string(data) {
			c.t.Fatalf("%s put through %s reads back %d bytes through %s, want %d identical", p, c.nodes[via[0]].name, len(got), c.nodes[via[1]].name, len(data))
		}
	}
}

// attemptsListed checks that the job's attempts, as listed through node
// newer and through node older (each asks every member over
// /shoal/tasklog/1), are the same, that every member answered, and that
// maps run by the old release's nodes (olds) are among them.
func (c *upgradeCluster) attemptsListed(id string, newer, older int, olds ...int) {
	c.t.Helper()
	clustertest.Eventually(c.t, time.Minute, func() error { // one listing may see a late backup attempt end
		views := map[int]string{}
		for _, i := range []int{newer, older} {
			ls, err := c.client(i).TaskLogs(context.Background(), id, "")
			if err != nil {
				return fmt.Errorf("attempts of %s through %s: %v", id, c.nodes[i].name, err)
			}
			if len(ls.Missing) > 0 {
				return fmt.Errorf("attempts of %s through %s: %v did not answer", id, c.nodes[i].name, ls.Missing)
			}
			var succeeded []string
			for _, a := range ls.Attempts {
				if strings.HasPrefix(a.Task, "m") && a.Result == "succeeded" {
					succeeded = append(succeeded, fmt.Sprintf("%s/%d@%s", a.Task, a.Attempt, a.Node))
				}
			}
			slices.Sort(succeeded)
			views[i] = strings.Join(succeeded, " ") + " "
		}
		if views[newer] != views[older] {
			return fmt.Errorf("succeeded map attempts listed through %s:\n%s\nthrough %s:\n%s", c.nodes[newer].name, views[newer], c.nodes[older].name, views[older])
		}
		if !slices.ContainsFunc(olds, func(i int) bool { return strings.Contains(views[older], "@"+c.nodes[i].name+" ") }) {
			return fmt.Errorf("no succeeded map attempt of %s on a node of the old release:\n%s", id, views[older])
		}
		return nil
	})
}

// jobRunning fails the test unless job id is still running.
func (c *upgradeCluster) jobRunning(id, why string) {
	c.t.Helper()
	s, err := c.client(0).Job(context.Background(), id)
	if err != nil {
		c.t.Fatal(err)
	}
	if s.State != "running" {
		c.dumpLogs()
		c.t.Fatalf("job %s is %s (%s), want running: %s", id, s.State, s.Error, why)
	}
}

// allAtR walks dir and checks every block of every file below it: as many
// holders as the file's replication (capped at the cluster size), and
// those are its owners.
func (c *upgradeCluster) allAtR(dir string) error {
	cl := c.client(0)
	ctx := context.Background()
	entries, err := cl.List(ctx, dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Dir {
			if err := c.allAtR(e.Path); err != nil {
				return err
			}
			continue
		}
		st, err := cl.StatBlocks(ctx, e.Path)
		if err != nil {
			return fmt.Errorf("stat %s: %w", e.Path, err)
		}
		r := min(st.File.Replication, upgradeNodes)
		for _, b := range st.Blocks {
			h, o := slices.Clone(b.Holders), slices.Clone(b.Owners)
			slices.Sort(h)
			slices.Sort(o)
			if len(h) != r || !slices.Equal(h, o) {
				return fmt.Errorf("%s block %.12s: holders %v, owners %v, want %d", e.Path, b.ID, h, o, r)
			}
		}
	}
	return nil
}

func (c *upgradeCluster) dumpLogs() {
	for _, n := range c.nodes {
		b, _ := os.ReadFile(n.logPath)
		c.t.Logf("--- %s log (end):\n%s", n.name, tail(string(b), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
