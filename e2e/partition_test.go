package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// Partition tests: real agents in network namespaces (nettest/netns), with
// the default gossip timings, a secret, and a shortened reconnect interval.
// They need root and ip, and skip otherwise.

// reconnectInterval is the agents' --reconnect-interval in these tests.
const reconnectInterval = 5 * time.Second

// healBound bounds the time from the end of a split until every node sees
// every node alive: the next reconnect round (≤ one interval; with as many
// failed members as alive ones on the smaller side every round there
// tries), a join that may first wait out one attempt to an unreachable
// address started before the heal (the 10s TCP timeout), the refutation of
// the "dead" verdicts (one probe/gossip round, about 1s), and a margin
// for a loaded machine: 5s + 10s + 1s, doubled.
const healBound = 2 * (reconnectInterval + 10*time.Second + time.Second)

// splitFor is how long a split lasts: long enough for the LAN failure
// detector to declare the other side dead (at most
// FailureDetectionTime(5) = 30s with confirmations missing; about 12s for
// a 2-node side here) and for memberlist's gossip to the dead to stop.
const splitFor = 30 * time.Second

// ackedPut is a put that the cluster acknowledged.
type ackedPut struct {
	path, local string
}

func TestPartitionHeals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hosts int
		a, b  []int
	}{
		{"2|2", 4, []int{0, 1}, []int{2, 3}},
		{"2|3", 5, []int{0, 1}, []int{2, 3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) { testPartition(t, tc.hosts, tc.a, tc.b) })
	}
}

func testPartition(t *testing.T, hosts int, sideA, sideB []int) {
	c := startNSCluster(t, hosts, "--reconnect-interval", reconnectInterval.String())
	scratch := t.TempDir()

	// Input and the sequential run's output.
	input, want := localWordcount(t, scratch, "12MB", 16, 4)
	c.mustCLI(0, "fs", "put", input, "/in/corpus.txt", "--block-size", "256K")

	// Submit on the side B host that will be cut off, then split at once.
	submitter := sideB[0]
	id := strings.TrimSpace(c.mustCLI(submitter, "job", "run", "wordcount", "--input", "/in/corpus.txt", "--output", "/out/wc", "--reducers", "4", "--detach"))
	// Side A knows the job before the split (a status call pulls its
	// record), so both halves run it.
	for _, i := range sideA {
		c.mustCLI(i, "job", "status", id)
	}
	c.lab.Partition(sideA, sideB)
	splitAt := time.Now()
	t.Logf("split %v|%v at %s; job %s submitted on %s", sideA, sideB, splitAt.Format(time.TimeOnly), id, c.lab.Host(submitter).Name())

	// Puts on both sides for the length of the split.
	var (
		mu    sync.Mutex
		acked []ackedPut
		wg    sync.WaitGroup
	)
	for _, side := range [][]int{sideA, sideB} {
		host := side[len(side)-1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Since(splitAt) < splitFor; k++ {
				name := fmt.Sprintf("%s-%d", c.lab.Host(host).Name(), k)
				local := filepath.Join(scratch, name)
				if err := os.WriteFile(local, genText(uint64(100*host+k), 300_000), 0o600); err != nil {
					t.Error(err)
					return
				}
				path := "/split/" + name
				r := c.cli(host, "fs", "put", local, path, "--block-size", "64K")
				if r.code != 0 {
					t.Logf("put %s during the split not acknowledged: %s", path, strings.TrimSpace(r.stderr))
					continue
				}
				mu.Lock()
				acked = append(acked, ackedPut{path: path, local: local})
				mu.Unlock()
			}
		}()
	}
	// Each side declares the other dead while split. With default gossip
	// timings a side of two suspects three members with one confirmer, so
	// it may take up to memberlist's longest suspicion timeout per member
	// (about 17 s at 5 nodes) plus a probe round each: allow 60 s, and the
	// split lasts until this holds.
	clustertest.Eventually(t, 60*time.Second, func() error {
		for _, side := range [][]int{sideA, sideB} {
			for _, i := range side {
				names, err := c.alive(i)
				if err != nil {
					return err
				}
				if len(names) != len(side) {
					return fmt.Errorf("%s sees %d alive during the split, want %d", c.lab.Host(i).Name(), len(names), len(side))
				}
			}
		}
		return nil
	})
	// The same path created on both sides, side B's last: the later
	// write is the one everyone reads after the heal.
	same := "/both/same.txt"
	localA, localB := filepath.Join(scratch, "same-a"), filepath.Join(scratch, "same-b")
	os.WriteFile(localA, genText(1, 100_000), 0o600)
	os.WriteFile(localB, genText(2, 150_000), 0o600)
	c.mustCLI(sideA[0], "fs", "put", localA, same)
	c.mustCLI(sideB[0], "fs", "put", localB, same)
	wg.Wait()
	c.lab.Heal()
	healedAt := time.Now()
	t.Logf("healed after %v; %d puts acknowledged during the split", healedAt.Sub(splitAt).Round(time.Second), len(acked))

	// Every node sees every node alive within healBound.
	c.waitAlive(hosts, healBound)
	t.Logf("one cluster again %v after the heal (bound %v)", time.Since(healedAt).Round(100*time.Millisecond), healBound)
	merged, tried := 0, 0
	for i := range hosts {
		var m, s int
		fmt.Sscan(c.metric(i, "shoal_members_merged_total"), &m)
		fmt.Sscan(c.metric(i, "shoal_reconnect_successes_total"), &s)
		if a := c.metric(i, `shoal_members{state="alive"}`); a != fmt.Sprint(hosts) {
			t.Errorf("%s: shoal_members{state=\"alive\"} %q, want %d", c.lab.Host(i).Name(), a, hosts)
		}
		merged += m
		tried += s
	}
	if merged == 0 || tried == 0 {
		t.Errorf("healed with %d merges and %d successful reconnects counted", merged, tried)
	}
	logged := false
	for i := range hosts {
		logged = logged || c.logHas(i, "gossip: merged with members this node had marked failed")
	}
	if !logged {
		t.Error("no agent logged the merge")
	}

	// Every acknowledged put reads back identical on every node.
	for _, p := range acked {
		wantB, _ := os.ReadFile(p.local)
		for i := range hosts {
			clustertest.Eventually(t, time.Minute, func() error {
				r := c.cli(i, "fs", "cat", p.path)
				if r.code != 0 {
					return fmt.Errorf("%s: cat %s: %s", c.lab.Host(i).Name(), p.path, r.stderr)
				}
				if r.stdout != string(wantB) {
					return fmt.Errorf("%s: %s reads back %d bytes, want %d identical", c.lab.Host(i).Name(), p.path, len(r.stdout), len(wantB))
				}
				return nil
			})
		}
	}

	conflictCopy := checkConflict(t, c, same, localB, localA, sideA)

	// Every block of every file is back at R, on its owners.
	files := []string{"/in/corpus.txt", same, conflictCopy}
	for _, p := range acked {
		files = append(files, p.path)
	}
	ls := c.cli(0, "fs", "ls", "/out/wc") // the job's output, checked below
	for _, line := range strings.Split(ls.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if base := filepath.Base(f[len(f)-1]); strings.HasPrefix(base, "part-r-") || base == "_SUCCESS" {
			files = append(files, "/out/wc/"+base)
		}
	}
	clustertest.Eventually(t, 3*time.Minute, func() error {
		for _, f := range files {
			out := c.mustCLI(hosts-1, "fs", "stat", f)
			if !strings.Contains(out, "Status: HEALTHY") || strings.Contains(out, "MOVING") {
				return fmt.Errorf("%s:\n%s", f, out)
			}
		}
		return nil
	})

	checkJobAfterHeal(t, c, id, want)
	for _, side := range [][]int{sideA, sideB} {
		for _, i := range side {
			if c.logHas(i, "task waits for its input, which is on no alive member") {
				t.Logf("%s waited for input blocks on no alive member during the split", c.lab.Host(i).Name())
			}
		}
	}
}

// checkJobAfterHeal checks that the job ran on both halves ends succeeded
// on every node, with the sequential run's output and one _SUCCESS.
func checkJobAfterHeal(t *testing.T, c *nsCluster, id, want string) {
	hosts := len(c.lab.Hosts())
	states := map[string]string{}
	for i := range hosts {
		clustertest.Eventually(t, 3*time.Minute, func() error {
			out := c.mustCLI(i, "job", "status", id)
			if strings.Contains(out, "state:     running") {
				return fmt.Errorf("%s: %s", c.lab.Host(i).Name(), out)
			}
			states[c.lab.Host(i).Name()] = out
			return nil
		})
	}
	for name, out := range states {
		if !strings.Contains(out, "state:     succeeded") {
			t.Fatalf("%s: job did not succeed after the heal:\n%s", name, out)
		}
	}
	t.Logf("%s: job status after the heal:\n%s", c.lab.Host(0).Name(), states[c.lab.Host(0).Name()])
	for i := range hosts {
		if got := c.mustCLI(i, "fs", "cat", "/out/wc/part-*"); got != want {
			t.Errorf("%s: output (%d bytes) differs from the sequential run (%d bytes)", c.lab.Host(i).Name(), len(got), len(want))
		}
		if ls := c.mustCLI(i, "fs", "ls", "/out/wc"); strings.Count(ls, "_SUCCESS") != 1 {
			t.Errorf("%s: ls /out/wc:\n%s", c.lab.Host(i).Name(), ls)
		}
	}
}

// checkConflict checks the documented outcome of one path created on both
// sides: every node reads the later write (winnerLocal), and every node
// lists the conflict, whose copy holds the other write (loserLocal); a
// node of the losing side logged it.
func checkConflict(t *testing.T, c *nsCluster, p, winnerLocal, loserLocal string, loserSide []int) string {
	t.Helper()
	winner, _ := os.ReadFile(winnerLocal)
	loser, _ := os.ReadFile(loserLocal)
	var copyPath string
	for i := range c.lab.Hosts() {
		name := c.lab.Host(i).Name()
		clustertest.Eventually(t, time.Minute, func() error {
			if got := c.mustCLI(i, "fs", "cat", p); got != string(winner) {
				return fmt.Errorf("%s reads %d bytes at %s, want the later write's %d", name, len(got), p, len(winner))
			}
			out := c.mustCLI(i, "fs", "conflicts")
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) >= 6 && f[0] == p {
					copyPath = f[5] // PATH WRITER, SIZE, DATE TIME COPY …
					return nil
				}
			}
			return fmt.Errorf("%s lists no conflict for %s:\n%s", name, p, out)
		})
		if got := c.mustCLI(i, "fs", "cat", copyPath); got != string(loser) {
			t.Errorf("%s: the conflict copy %s holds %d bytes, want the earlier write's %d", name, copyPath, len(got), len(loser))
		}
	}
	logged := false
	for _, i := range loserSide {
		logged = logged || c.logHas(i, "the same file was written on both sides of a network partition")
	}
	if !logged {
		t.Errorf("no node of the losing side logged the conflict on %s", p)
	}
	t.Logf("%s: the later write is read everywhere; the other is kept as %s", p, copyPath)
	return copyPath
}
