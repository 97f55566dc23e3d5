package peer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
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

// syncProtocol carries anti-entropy rounds by digest (gossip.Node.SyncWith
// and ServeSync) between members.
const syncProtocol = "/shoal/meta/2"

// maxMetaAnswer bounds one member's answer.
const maxMetaAnswer = 256 << 20

// metaSyncTimeout bounds the pull from one member.
const metaSyncTimeout = 3 * time.Second

type metaRequest struct {
	Prefix string `msgpack:"p"`
}

func (n *Node) serveMeta(from mesh.NodeName, s mesh.Stream) {
	defer s.Close()
	if n.recovering.Load() {
		// Stale or reset metadata must not reach a reader: the puller
		// skips a member that does not answer.
		s.Reset()
		return
	}
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

// openMeta opens the record store (gossip) on DATA_DIR/meta.db. An empty
// or corrupt file, or a missing one while the data dir holds blocks, is an
// error unless RecoverMeta is set: then the file is moved aside (kept,
// named with the time) and the node starts empty, in recovery. A node
// whose metadata is stale (last in sync longer ago than the tombstone TTL)
// starts in recovery too.
func (n *Node) openMeta(gcfg *gossip.Config) error {
	path := gcfg.DBPath
	reason := ""
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if blocks, _ := n.blocks.List(); len(blocks) > 0 {
			reason = fmt.Sprintf("missing while the data dir holds %d blocks", len(blocks))
		}
	}
	if reason == "" {
		g, err := gossip.New(*gcfg)
		if err == nil {
			n.gossip = g
			if n.cfg.RecoverMeta {
				n.log.Info("metadata file is sound; nothing to recover", "file", path)
			}
			if g.StaleAtStart() {
				n.recovering.Store(true)
				n.startedRecovering = true
			}
			return nil
		}
		var bad *gossip.BadStoreError
		if !errors.As(err, &bad) {
			return fmt.Errorf("gossip: %w", err)
		}
		reason = bad.Reason
	}
	if !n.cfg.RecoverMeta {
		return fmt.Errorf("metadata file %s is %s; the agent will not start on it: start it with --recover-meta to move it aside and re-sync the metadata from the other members", path, reason)
	}
	aside := ""
	if _, err := os.Stat(path); err == nil {
		aside = fmt.Sprintf("%s.bad-%s", path, time.Now().UTC().Format("20060102T150405.000Z"))
		if err := os.Rename(path, aside); err != nil {
			return fmt.Errorf("recover metadata: move %s aside: %w", path, err)
		}
	}
	n.log.Warn("metadata unusable: starting empty; the API answers 503 until it is re-synced from the other members",
		"file", path, "reason", reason, "moved_to", aside)
	gcfg.MetadataReset = true
	g, err := gossip.New(*gcfg)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	n.gossip = g
	n.recovering.Store(true)
	n.startedRecovering = true
	return nil
}

// awaitRecovery ends recovery once the metadata is in sync with every
// alive member.
func (n *Node) awaitRecovery(ctx context.Context) {
	if !n.recovering.Load() {
		return
	}
	select {
	case <-n.gossip.SyncedChan():
		n.recovering.Store(false)
		n.log.Info("metadata in sync with every alive member; serving", "records", n.gossip.Records().Len())
	case <-ctx.Done():
	}
}

// Recovering reports whether the node is re-syncing reset or stale
// metadata and so answers its API with 503.
func (n *Node) Recovering() bool { return n.recovering.Load() }

// StartedRecovering reports whether the node started on reset or stale
// metadata, and so served nothing but health, metrics and members until
// it was re-synced. It stays true after the recovery ends.
func (n *Node) StartedRecovering() bool { return n.startedRecovering }

// gateRecovery answers 503 "recovering metadata" on every API call but
// health, metrics and members while the node is recovering.
func (n *Node) gateRecovery(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.recovering.Load() && r.URL.Path != "/v1/health" && r.URL.Path != "/metrics" && r.URL.Path != "/v1/members" {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "recovering metadata: "+n.cfg.Name+" is re-syncing its metadata from the other members; retry shortly")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// SyncFiles pulls the file records at and below path from every alive
// member into this node's store, as the API does before it answers about
// files, so that a local read sees every write acknowledged anywhere.
func (n *Node) SyncFiles(ctx context.Context, path string) {
	n.syncRecords(ctx, fileRecordPrefix(path))
}

// Synced reports whether the metadata has completed an anti-entropy round
// with every alive member since the node started (safe mode ends then).
func (n *Node) Synced() bool { return n.gossip.Synced() }

// AntiEntropyStats returns the metadata anti-entropy counters.
func (n *Node) AntiEntropyStats() gossip.SyncStats { return n.gossip.SyncStats() }
