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
	"testing"
	"time"
)

// fakeAgent answers the three calls of a resumable put: the ring owner of
// every block is "a" (this agent), blocks are acknowledged with their
// SHA-256 once hold is closed, and a commit is accepted.
type fakeAgent struct {
	hold   chan struct{} // PUT /v1/fs/block answers once it is closed
	owners chan string   // each key asked of GET /v1/ring/owners
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/ring/owners":
		a.owners <- r.URL.Query().Get("key")
		json.NewEncoder(w).Encode(OwnersInfo{Key: r.URL.Query().Get("key"), Owners: []string{"a"}})
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
