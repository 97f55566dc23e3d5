package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"shoal.dev/shoal/client"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/claim"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// testSeed is SHOAL_TEST_SEED, or the time; it is logged so that a failing
// schedule can be run again.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SHOAL_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SHOAL_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (SHOAL_TEST_SEED=%d repeats it)", seed, seed)
	return seed
}

func clients(t *testing.T, c *clustertest.Cluster) []*client.Client {
	t.Helper()
	var out []*client.Client
	for i := 0; i < c.Len(); i++ {
		cl, err := client.New(c.Node(i).HTTPURL(), c.Config(i).Secret.APIToken())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cl)
	}
	return out
}

// conflict checks that err is the API's one-line 409 containing want.
func conflict(err error, want string) error {
	var ae *client.Error
	switch {
	case !errors.As(err, &ae):
		return fmt.Errorf("not an API error: %v", err)
	case ae.Status != http.StatusConflict:
		return fmt.Errorf("status %d: %s", ae.Status, ae.Message)
	case !strings.Contains(ae.Message, want) || strings.Contains(ae.Message, "\n"):
		return fmt.Errorf("message %q: want one line with %q", ae.Message, want)
	}
	return nil
}

// TestConcurrentPutsOneWinner races puts of one path without --force,
// through every node: exactly one wins, every other gets "exists", and
// every node reads the winner's bytes and nothing of the losers.
func TestConcurrentPutsOneWinner(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 9))
	c := clustertest.Start(t, 3, clustertest.Options{})
	cls := clients(t, c)
	ctx := context.Background()
	const rounds, racers = 8, 8
	for r := 0; r < rounds; r++ {
		dir := fmt.Sprintf("/race/%d", r)
		p := dir + "/f"
		datas := make([][]byte, racers)
		via := make([]int, racers)
		errs := make([]error, racers)
		for i := range datas {
			via[i] = rng.IntN(c.Len())
			datas[i] = bytes.Repeat([]byte(fmt.Sprintf("racer %d of round %d through node%d\n", i, r, via[i]+1)), 1+rng.IntN(5000))
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range datas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = cls[via[i]].Put(ctx, p, bytes.NewReader(datas[i]), int64(len(datas[i])), client.PutOptions{BlockSize: blockstore.MinBlockSize})
			}()
		}
		close(start)
		wg.Wait()
		winner := oneWinner(t, r, p, errs)
		for n, cl := range cls {
			rc, err := cl.Open(ctx, p)
			if err != nil {
				t.Fatalf("round %d: get through node%d: %v", r, n+1, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, datas[winner]) {
				t.Fatalf("round %d: node%d reads %d bytes (%v), want racer %d's %d", r, n+1, len(got), err, winner, len(datas[winner]))
			}
			if es, err := cl.List(ctx, dir); err != nil || len(es) != 1 {
				t.Fatalf("round %d: node%d lists %v (%v), want one file", r, n+1, es, err)
			}
		}
	}
	// --force still replaces, and a put of an existing path says so at once.
	if _, err := cls[1].Put(ctx, "/race/0/f", strings.NewReader("forced\n"), 7, client.PutOptions{Force: true}); err != nil {
		t.Fatalf("forced put: %v", err)
	}
	_, err := cls[2].Put(ctx, "/race/0/f", strings.NewReader("again\n"), 6, client.PutOptions{})
	if err := conflict(err, "exists"); err != nil {
		t.Fatalf("put of an existing path: %v", err)
	}
}

// TestConcurrentSubmitsOneOutput submits jobs with one output through
// every node at once: exactly one is accepted, the others are refused with
// 409, and the accepted job's output equals the sequential run's.
func TestConcurrentSubmitsOneOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 11))
	c := clustertest.Start(t, 3, clustertest.Options{})
	cls := clients(t, c)
	ctx := context.Background()
	inputs := map[string][]byte{"/in/a.txt": corpus(rng.Uint64(), 200<<10), "/in/b.txt": corpus(rng.Uint64(), 100<<10)}
	order := []string{"/in/a.txt", "/in/b.txt"}
	for p, data := range inputs {
		put(t, c.Node(0), p, data, blockstore.MinBlockSize)
	}
	const rounds, racers = 3, 6
	for r := 0; r < rounds; r++ {
		out := fmt.Sprintf("/out/%d", r)
		reducers := 1 + rng.IntN(3)
		sts := make([]client.JobStatus, racers)
		errs := make([]error, racers)
		via := make([]int, racers)
		for i := range via {
			via[i] = rng.IntN(c.Len())
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range via {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sts[i], errs[i] = cls[via[i]].Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in"}, Output: out, Reducers: reducers})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: jobs %s and %s both accepted with output %s", r, sts[winner].ID, sts[i].ID, out)
				}
				winner = i
				continue
			}
			if err := conflict(err, "exists or is being written"); err != nil {
				t.Fatalf("round %d: submission %d: %v", r, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no submission accepted: %v", r, errs)
		}
		st := waitJob(t, c.Node(rng.IntN(c.Len())), sts[winner].ID, 60*time.Second)
		if st.State != scheduler.StateSucceeded {
			t.Fatalf("round %d: job %s: %s", r, st.State, st.Error)
		}
		clustertest.Eventually(t, 10*time.Second, func() error {
			if es, _ := c.Node(2).FS().List(out); len(es) != reducers+1 {
				return fmt.Errorf("%d files in %s", len(es), out)
			}
			return nil
		})
		got, _ := readParts(t, c.Node(2), out)
		if want := sequential(t, "wordcount", nil, inputs, order, reducers); !bytes.Equal(got, want) {
			t.Fatalf("round %d: distributed output (%d bytes) differs from sequential (%d bytes)", r, len(got), len(want))
		}
	}
}

// TestLongPutHoldsItsPath: a put that lasts several leases keeps its
// reservation by renewing it (without renewals its commit finds the lease
// gone), and its bytes are what every node reads.
func TestLongPutHoldsItsPath(t *testing.T) {
	const ttl = 1500 * time.Millisecond
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(_ int, cfg *peer.Config) { cfg.CreateTTL = ttl }})
	cls := clients(t, c)
	const p = "/long"
	pr, pw := io.Pipe()
	var want bytes.Buffer
	for i := range 40 {
		want.WriteString(fmt.Sprintf("line %d\n", i))
	}
	go func() {
		for _, line := range strings.SplitAfter(want.String(), "\n") {
			pw.Write([]byte(line))
			time.Sleep(ttl / 10) // the client being slow, not a wait: 4 leases in all
		}
		pw.Close()
	}()
	if _, err := cls[0].Put(context.Background(), p, pr, -1, client.PutOptions{}); err != nil {
		t.Fatalf("a put longer than its lease: %v", err)
	}
	for n, cl := range cls {
		rc, err := cl.Open(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("node%d reads %q", n+1, got)
		}
	}
}

// TestPutWhileAMemberHangs: one member takes pulls of records but never
// answers them (a hung or badly loaded node that gossip still counts
// alive). A path's primary pulls the path's records from every member
// before it grants a reservation, so each grant waits out the pull's 3 s
// timeout: the whole lease with --fast-gossip. The writer must count its
// lease from the primary's decision, not from when it asked; counted from
// when it asked, the lease had lapsed before the grant arrived and every
// put failed ("the reservation of /hang/0 lapsed").
func TestPutWhileAMemberHangs(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	if ttl := c.Config(0).CreateTTL; ttl != 0 && ttl != peer.FastCreateTTL {
		t.Fatalf("create TTL %v, want the --fast-gossip default", ttl)
	}
	// node3 reads each pull and never answers, until the puller gives up.
	c.Node(2).Handle(peer.MetaProtocol, func(_ mesh.NodeName, s mesh.Stream) {
		io.Copy(io.Discard, s)
		s.Reset()
	})
	cls := clients(t, c)
	// Paths whose primary is node1 or node2, which pull from node3.
	var paths []string
	for i := 0; len(paths) < 2; i++ {
		p := fmt.Sprintf("/hang/%d", i)
		if c.Node(0).Ring().Owner(claim.Key(p)) != c.Config(2).Name {
			paths = append(paths, p)
		}
	}
	for i, p := range paths {
		data := []byte(fmt.Sprintf("file %d\n", i))
		t0 := time.Now()
		if _, err := cls[i%2].Put(context.Background(), p, bytes.NewReader(data), int64(len(data)), client.PutOptions{}); err != nil {
			t.Fatalf("put %s while node3 hangs: %v", p, err)
		}
		t.Logf("put %s in %v", p, time.Since(t0))
		rc, err := cls[1-i%2].Open(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("%s reads %q, want %q", p, got, data)
		}
	}
}

// oneWinner checks that exactly one of a round's racers to create path
// succeeded and that every other was refused because it exists, and
// returns the winner.
func oneWinner(t *testing.T, round int, path string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("round %d (seed above): racers %d and %d both created %s", round, winner, i, path)
			}
			winner = i
			continue
		}
		if err := conflict(err, "exists"); err != nil {
			t.Fatalf("round %d: racer %d: %v", round, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("round %d: nobody created %s: %v", round, path, errs)
	}
	return winner
}
