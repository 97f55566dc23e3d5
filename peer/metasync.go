package peer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/mesh"
)

// metaProtocol serves a member's records under a prefix. Gossip spreads
// writes within a few hundred milliseconds; a client read pulls the records
// it needs from every alive member first, so a file that a put reported
// written anywhere is visible everywhere at once (read-your-writes across
// nodes), and a removed one is gone.
const metaProtocol = "/shoal/meta/1"

// maxMetaAnswer bounds one member's answer.
const maxMetaAnswer = 256 << 20

// metaSyncTimeout bounds the pull from one member.
const metaSyncTimeout = 3 * time.Second

type metaRequest struct {
	Prefix string `msgpack:"p"`
}

func (n *Node) serveMeta(from mesh.NodeName, s mesh.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(metaSyncTimeout))
	var req metaRequest
	if err := mesh.ReadMsg(s, &req, 4<<10); err != nil {
		n.log.Warn("bad meta request", "from", from, "err", err)
		s.Reset()
		return
	}
	if err := mesh.WriteMsg(s, n.gossip.Records().Export(req.Prefix)); err != nil {
		s.Reset()
	}
}

// syncRecords pulls the records under prefix from every other alive member
// and merges them. Members that do not answer in time are skipped: gossip
// brings their writes later.
func (n *Node) syncRecords(ctx context.Context, prefix string) {
	var wg sync.WaitGroup
	for _, m := range n.Ring().Members() {
		if m == n.cfg.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, err := n.pullRecords(ctx, m, prefix)
			if err != nil {
				n.log.Debug("meta sync skipped a member", "member", m, "err", err)
				return
			}
			if _, err := n.gossip.Records().Merge(recs); err != nil {
				n.log.Warn("meta sync: member sent bad records", "member", m, "err", err)
			}
		}()
	}
	wg.Wait()
}

func (n *Node) pullRecords(ctx context.Context, member, prefix string) ([]gossip.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, metaSyncTimeout)
	defer cancel()
	s, err := n.Dial(ctx, member, metaProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	d, _ := ctx.Deadline()
	s.SetDeadline(d)
	if err := mesh.WriteMsg(s, metaRequest{Prefix: prefix}); err != nil {
		s.Reset()
		return nil, err
	}
	var recs []gossip.Record
	if err := mesh.ReadMsg(s, &recs, maxMetaAnswer); err != nil {
		s.Reset()
		return nil, err
	}
	for _, r := range recs {
		if !strings.HasPrefix(r.Key, prefix) {
			return nil, fmt.Errorf("%s answered a record outside %q", member, prefix)
		}
	}
	return recs, nil
}
