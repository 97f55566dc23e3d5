package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"shoal.dev/shoal/client"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
)

func TestRenameAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := clustertest.Start(t, 2, clustertest.Options{})
	cl, err := client.New(c.Node(1).HTTPURL(), c.Config(0).Secret.APIToken())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(0).FS().Create(ctx, "/a/f", strings.NewReader("x\n"), blockstore.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Node(1).FS().MakeDir("/b")
	// Into a directory, then by name; the node answering syncs the records
	// it has not heard of yet.
	ri, err := cl.Rename(ctx, "/a/f", "/b")
	if err != nil || ri.Dst != "/b/f" {
		t.Fatalf("mv into a dir: %+v %v", ri, err)
	}
	if ri, err = cl.Rename(ctx, "/b", "/c"); err != nil || ri.Dst != "/c" {
		t.Fatalf("mv a dir: %+v %v", ri, err)
	}
	for _, tc := range []struct{ src, dst, want string }{
		{"/missing", "/x", "no such file"},
		{"/c", "/c/f/deeper", "cannot move /c below itself"},
		{"relative", "/x", "must be absolute"},
	} {
		if _, err := cl.Rename(ctx, tc.src, tc.dst); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mv "+tc.src) {
			t.Errorf("mv %s %s: %v, want %q", tc.src, tc.dst, err, tc.want)
		}
	}
	if _, err := cl.Rename(ctx, "", "/x"); err == nil {
		t.Error("mv of an empty path accepted")
	}
	if _, err := c.Node(1).FS().Stat("/c/f"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentRenamesOneWinner races renames of different files to one
// path, and a put of it, through every node: the destination is created
// as a put creates it, so exactly one wins; every other gets "exists" and
// keeps its source, and every node reads the winner's bytes there. Before
// renames took the path's reservation, several won and the last record
// written stood, the others' files lost from the namespace.
func TestConcurrentRenamesOneWinner(t *testing.T) {
	rng := rand.New(rand.NewPCG(testSeed(t), 13))
	c := clustertest.Start(t, 3, clustertest.Options{})
	cls := clients(t, c)
	ctx := context.Background()
	const rounds, racers = 4, 6
	for r := range rounds {
		dst := fmt.Sprintf("/mvrace/%d/dst", r)
		datas := make([][]byte, racers)
		via := make([]int, racers)
		errs := make([]error, racers)
		src := func(i int) string { return fmt.Sprintf("/mvrace/%d/src-%d", r, i) }
		for i := range datas {
			via[i] = rng.IntN(c.Len())
			datas[i] = bytes.Repeat(fmt.Appendf(nil, "racer %d of round %d through node%d\n", i, r, via[i]+1), 1+rng.IntN(2000))
			if i == racers-1 {
				continue // this one puts dst itself
			}
			if _, err := cls[via[i]].Put(ctx, src(i), bytes.NewReader(datas[i]), int64(len(datas[i])), client.PutOptions{BlockSize: blockstore.MinBlockSize}); err != nil {
				t.Fatal(err)
			}
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range datas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if i == racers-1 {
					_, errs[i] = cls[via[i]].Put(ctx, dst, bytes.NewReader(datas[i]), int64(len(datas[i])), client.PutOptions{BlockSize: blockstore.MinBlockSize})
					return
				}
				_, errs[i] = cls[via[i]].Rename(ctx, src(i), dst)
			}()
		}
		close(start)
		wg.Wait()
		winner := oneWinner(t, r, dst, errs)
		for n, cl := range cls {
			clustertest.Eventually(t, 10*time.Second, func() error {
				if err := readsBack(ctx, cl, dst, datas[winner]); err != nil {
					return fmt.Errorf("round %d: node%d: %v (racer %d won)", r, n+1, err, winner)
				}
				for i := range racers - 1 {
					if i == winner {
						continue
					}
					if err := readsBack(ctx, cl, src(i), datas[i]); err != nil {
						return fmt.Errorf("round %d: node%d: a losing rename's source: %v", r, n+1, err)
					}
				}
				return nil
			})
		}
	}
}

// readsBack checks that p reads back as want through cl.
func readsBack(ctx context.Context, cl *client.Client, p string, want []byte) error {
	rc, err := cl.Open(ctx, p)
	if err != nil {
		return fmt.Errorf("get %s: %w", p, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("get %s: %w", p, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s reads %d bytes, want %d", p, len(got), len(want))
	}
	return nil
}
