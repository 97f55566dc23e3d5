package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeAgent answers the three calls of a resumable put: the ring has two
// members, "a" (this agent) first for every key, and "b"; blocks are
// acknowledged with their SHA-256 once hold is closed, and a commit is
// accepted.
type fakeAgent struct {
	hold   chan struct{} // PUT /v1/fs/block answers once it is closed
	owners chan string   // each key asked of GET /v1/ring/owners
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/ring/owners":
		a.owners <- r.URL.Query().Get("key")
		json.NewEncoder(w).Encode(OwnersInfo{Key: r.URL.Query().Get("key"), Owners: ringOwners([]string{"a", "b"}, r)})
	case "/v1/fs/block":
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		<-a.hold
		json.NewEncoder(w).Encode(BlockAck{ID: hex.EncodeToString(h.Sum(nil)), Size: n, Copies: 1, Replication: 1})
	case "/v1/fs/commit":
		json.NewEncoder(w).Encode(PutInfo{})
	default:
		http.NotFound(w, r)
	}
}

// ringOwners answers GET /v1/ring/owners for a ring of members, the
// first of them first for every key: its first n members.
func ringOwners(members []string, r *http.Request) []string {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 {
		n = 3
	}
	return members[:min(n, len(members))]
}

// ringFake is one member's agent for TestPutSpreadsBlocksOverEveryOwner:
// it answers the owners of a key as ringOwners does and counts the
// questions, and counts the blocks it is sent.
type ringFake struct {
	members []string
	mu      sync.Mutex
	asked   int // GET /v1/ring/owners
	blocks  int // PUT /v1/fs/block
}

func (a *ringFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/ring/owners":
		a.mu.Lock()
		a.asked++
		a.mu.Unlock()
		json.NewEncoder(w).Encode(OwnersInfo{Key: r.URL.Query().Get("key"), Owners: ringOwners(a.members, r)})
	case "/v1/fs/block":
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.blocks++
		a.mu.Unlock()
		json.NewEncoder(w).Encode(BlockAck{ID: blockKey(b), Size: int64(len(b)), Copies: 1, Replication: 1})
	case "/v1/fs/commit":
		json.NewEncoder(w).Encode(PutInfo{})
	default:
		http.NotFound(w, r)
	}
}

// When every alive member owns every block (no more members than
// copies), a put spreads its blocks over their agents in turn and asks the
// ring once, hashing no block to place it; with more members than
// copies, each block is hashed and sent to its first owner ("a" for every
// key here), as before. A file of one block asks the ring once either way.
func TestPutSpreadsBlocksOverEveryOwner(t *testing.T) {
	const bs, blocks = 1000, 6
	for _, tc := range []struct {
		name      string
		repl      int
		blocks    int
		wantAsked int    // owner questions to both agents
		wantSent  [2]int // blocks a and b got
	}{
		{name: "R=2 of 2 members", repl: 2, blocks: blocks, wantAsked: 1, wantSent: [2]int{3, 3}},
		{name: "R=3 of 2 members", repl: 3, blocks: blocks, wantAsked: 1, wantSent: [2]int{3, 3}},
		{name: "R=1 of 2 members", repl: 1, blocks: blocks, wantAsked: 1 + blocks, wantSent: [2]int{blocks, 0}},
		{name: "one block, R=1", repl: 1, blocks: 1, wantAsked: 1, wantSent: [2]int{1, 0}},
		{name: "one block, R=2", repl: 2, blocks: 1, wantAsked: 1, wantSent: [2]int{1, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte // blocks of bs (no newline), each of one letter
			for i := range tc.blocks {
				data = append(data, bytes.Repeat([]byte{byte('a' + i)}, bs)...)
			}
			members := []string{"a", "b"}
			var fakes [2]*ringFake
			var list []*Client
			for i, name := range members {
				fakes[i] = &ringFake{members: members}
				srv := httptest.NewServer(fakes[i])
				defer srv.Close()
				c, err := New(srv.URL, "")
				if err != nil {
					t.Fatal(err)
				}
				list = append(list, c.Named(name))
			}
			if _, err := PutLocal(context.Background(), list, "/f", bytes.NewReader(data), int64(len(data)), PutOptions{BlockSize: bs, Replication: tc.repl}, nil, nil); err != nil {
				t.Fatalf("put: %v", err)
			}
			asked, sent := 0, [2]int{}
			for i, a := range fakes {
				a.mu.Lock()
				asked += a.asked
				sent[i] = a.blocks
				a.mu.Unlock()
			}
			if asked != tc.wantAsked || sent != tc.wantSent {
				t.Fatalf("the ring asked %d times, blocks sent to a and b %v; want %d and %v", asked, sent, tc.wantAsked, tc.wantSent)
			}
		})
	}
}

func blockKey(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// While every sender waits for an agent's answer, the put goes on finding
// the owners of the next putHashers blocks (hashing each and asking the
// ring), so that a sender starts the next block as soon as it is free.
// Before, a block was hashed only once a sender was free for it.
func TestPutPlacesTheNextBlockWhileSending(t *testing.T) {
	const bs = 1000
	var data []byte // blocks of bs (no newline), each of one letter
	for i := range putParallel + putHashers + 1 {
		data = append(data, bytes.Repeat([]byte{byte('a' + i)}, bs)...)
	}
	a := &fakeAgent{hold: make(chan struct{}), owners: make(chan string, 100)}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := PutLocal(context.Background(), []*Client{c.Named("a")}, "/f", bytes.NewReader(data), int64(len(data)), PutOptions{BlockSize: bs, Replication: 1}, nil, nil)
		done <- err
	}()
	// No block is answered yet, so putParallel are being sent; the next
	// putHashers must still be placed.
	want := map[string]bool{}
	for i := putParallel; i < putParallel+putHashers; i++ {
		want[blockKey(data[i*bs:(i+1)*bs])] = true
	}
	deadline := time.After(20 * time.Second)
	for asked := 0; ; asked++ {
		select {
		case k := <-a.owners:
			delete(want, k)
			if len(want) == 0 {
				close(a.hold)
				if err := <-done; err != nil {
					t.Fatalf("put: %v", err)
				}
				return
			}
		case err := <-done:
			t.Fatalf("put ended before any block was answered: %v", err)
		case <-deadline:
			close(a.hold)
			<-done
			t.Fatalf("blocks %d.. were not placed while %d blocks were being sent (%d owners asked)", putParallel, putParallel, asked)
		}
	}
}
