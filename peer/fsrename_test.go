package peer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

func TestRenameAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := clustertest.Start(t, 2, clustertest.Options{})
	cl, err := peer.NewClient(c.Node(1).HTTPURL(), c.Config(0).Secret.APIToken())
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
