package claim

import (
	"errors"
	"fmt"
	"strings"

	"shoal.dev/shoal/gossip"
)

// Protocol is the data-plane protocol a writer asks a path's primary on.
// One request and one answer per stream, each a length-prefixed msgpack
// control message.
const Protocol = "/shoal/create/1"

// wireVersion is the version of the messages below; a peer that speaks
// another one is refused.
const wireVersion = 1

// Limits checked before a message is decoded.
const (
	// maxRequest bounds a request: a path, a token and one record.
	maxRequest = gossip.MaxValueLen + gossip.MaxKeyLen + 8<<10
	// maxAnswer bounds an answer, which may carry the written record.
	maxAnswer = gossip.MaxValueLen + gossip.MaxKeyLen + 8<<10
	// maxPathLen bounds a path (blockstore.MaxPathLen).
	maxPathLen = 1024
	// maxTokenLen bounds a token.
	maxTokenLen = 64
)

// Kind says what a reservation is for. Reservations of one path conflict
// whatever their kinds.
type Kind string

// The kinds.
const (
	// KindFile: a file put without --force.
	KindFile Kind = "file"
	// KindOutput: a job's output directory, reserved at submission and
	// consumed by the job record.
	KindOutput Kind = "output"
)

func (k Kind) valid() bool { return k == KindFile || k == KindOutput }

// request is what a writer sends.
type request struct {
	V     int    `msgpack:"v"`
	Op    Op     `msgpack:"op"`
	Kind  Kind   `msgpack:"k"`
	Path  string `msgpack:"p"`
	Token string `msgpack:"t"`
	// Key and Value are the record a commit writes.
	Key   string `msgpack:"rk,omitempty"`
	Value []byte `msgpack:"rv,omitempty"`
}

func (r *request) validate() error {
	switch {
	case r.V != wireVersion:
		return fmt.Errorf("protocol version %d, want %d", r.V, wireVersion)
	case r.Op < OpReserve || r.Op > OpRelease:
		return fmt.Errorf("unknown operation %d", r.Op)
	case !r.Kind.valid():
		return fmt.Errorf("unknown kind %q", r.Kind)
	case !strings.HasPrefix(r.Path, "/") || len(r.Path) > maxPathLen:
		return fmt.Errorf("bad path of %d bytes", len(r.Path))
	case r.Token == "" || len(r.Token) > maxTokenLen:
		return errors.New("bad token")
	case r.Op == OpCommit && (r.Key == "" || len(r.Key) > gossip.MaxKeyLen || len(r.Value) == 0 || len(r.Value) > gossip.MaxValueLen):
		return errors.New("a commit needs a record of a valid size")
	}
	return nil
}

// answer is what the primary replies.
type answer struct {
	V       int     `msgpack:"v"`
	Verdict Verdict `msgpack:"d"`
	// Reason says why a path exists or who holds it, or what failed.
	Reason string `msgpack:"r,omitempty"`
	// RetryMS is how long to wait before asking again after a Wait.
	RetryMS int64 `msgpack:"w,omitempty"`
	// TTLMS is the reservation's lease after a grant or renewal.
	TTLMS int64 `msgpack:"l,omitempty"`
	// HeldMS is, after a grant or renewal, how long the primary held the
	// request before it decided, rounded down: the lease starts that much
	// after the primary began to serve the request. 0 from a primary that
	// does not say (the writer then counts from when it sent the request).
	HeldMS int64 `msgpack:"h,omitempty"`
	// Record is the record a commit wrote.
	Record *gossip.Record `msgpack:"rec,omitempty"`
	// Failed is set when the primary could not apply a commit (its store
	// refused the record); Reason says why.
	Failed bool `msgpack:"f,omitempty"`
}
