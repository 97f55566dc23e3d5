package scheduler

import (
	"slices"
	"strconv"
	"strings"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/ring"
)

// entry is a record with its version, for the lowest-version-wins rule.
type entry[T any] struct {
	node    string
	version gossip.Version
	val     T
}

// view is everything the records say about one job, as this node sees it.
type view struct {
	rec      JobRecord
	state    *StateRecord
	maps     map[int][]entry[MapRecord]
	mapFails map[int][]FailRecord
	commits  map[int][]entry[CommitRecord]
	redFails map[int][]FailRecord
}

// loadView reads a job's records. It returns false for an unknown or
// malformed job.
func loadView(recs Records, id string) (*view, bool) {
	r, ok := recs.Get(jobPrefix + id)
	if !ok {
		return nil, false
	}
	v := &view{
		maps:     map[int][]entry[MapRecord]{},
		mapFails: map[int][]FailRecord{},
		commits:  map[int][]entry[CommitRecord]{},
		redFails: map[int][]FailRecord{},
	}
	if decode(r.Value, &v.rec) != nil {
		return nil, false
	}
	if r, ok := recs.Get(statePrefix + id); ok {
		var st StateRecord
		if decode(r.Value, &st) == nil {
			v.state = &st
		}
	}
	for _, r := range recs.Scan(mapPrefix + id + "/") {
		idx, node, ok := taskKeyParts(r.Key, mapPrefix+id+"/")
		var m MapRecord
		if ok && decode(r.Value, &m) == nil && m.Node == node {
			v.maps[idx] = append(v.maps[idx], entry[MapRecord]{node: node, version: r.Version, val: m})
		}
	}
	for _, r := range recs.Scan(commitPrefix + id + "/") {
		idx, node, ok := taskKeyParts(r.Key, commitPrefix+id+"/")
		var c CommitRecord
		if ok && decode(r.Value, &c) == nil && c.Node == node {
			v.commits[idx] = append(v.commits[idx], entry[CommitRecord]{node: node, version: r.Version, val: c})
		}
	}
	for _, r := range recs.Scan(mapFailPrefix + id + "/") {
		idx, _, ok := taskKeyParts(r.Key, mapFailPrefix+id+"/")
		var f FailRecord
		if ok && decode(r.Value, &f) == nil {
			v.mapFails[idx] = append(v.mapFails[idx], f)
		}
	}
	for _, r := range recs.Scan(redFailPrefix + id + "/") {
		idx, _, ok := taskKeyParts(r.Key, redFailPrefix+id+"/")
		var f FailRecord
		if ok && decode(r.Value, &f) == nil {
			v.redFails[idx] = append(v.redFails[idx], f)
		}
	}
	return v, true
}

// taskKeyParts splits "<prefix><index>/<node>[/<attempt>]".
func taskKeyParts(key, prefix string) (int, string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return 0, "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 {
		return 0, "", false
	}
	idx, err := strconv.Atoi(parts[0])
	if err != nil || idx < 0 {
		return 0, "", false
	}
	return idx, parts[1], true
}

// lowest returns the entry with the lowest version among those keep
// accepts.
func lowest[T any](es []entry[T], keep func(node string) bool) (entry[T], bool) {
	var best entry[T]
	found := false
	for _, e := range es {
		if keep != nil && !keep(e.node) {
			continue
		}
		if !found || e.version.Compare(best.version) < 0 {
			best, found = e, true
		}
	}
	return best, found
}

// live is the job's participants that are alive now, sorted.
func (v *view) live(alive []string) []string {
	var out []string
	for _, p := range v.rec.Participants {
		if slices.Contains(alive, p) {
			out = append(out, p)
		}
	}
	return out
}

// acceptedMap is the map output of a split that reducers use: the
// lowest-version record from a live node. A map-only job's outputs are
// files, durable whoever wrote them, so liveness does not matter there.
func (v *view) acceptedMap(split int, live []string) (entry[MapRecord], bool) {
	if v.rec.MapOnly {
		return lowest(v.maps[split], nil)
	}
	return lowest(v.maps[split], func(n string) bool { return slices.Contains(live, n) })
}

// acceptedCommit is the commit of a partition that counts: its output part
// is durable, so any node's record will do; the lowest version wins.
func (v *view) acceptedCommit(part int) (entry[CommitRecord], bool) {
	return lowest(v.commits[part], nil)
}

// done reports whether every partition (or, map-only, every split) is
// committed.
func (v *view) done(splits int) bool {
	if v.rec.MapOnly {
		for i := 0; i < splits; i++ {
			if _, ok := v.acceptedMap(i, nil); !ok {
				return false
			}
		}
		return true
	}
	for p := 0; p < v.rec.Reducers; p++ {
		if _, ok := v.acceptedCommit(p); !ok {
			return false
		}
	}
	return true
}

// allMapsSeen reports whether this node has a map record for every split.
// Every reducer saw one before it committed, so a node that lacks one only
// has not heard of it yet; the job's counters wait for it.
// Likewise every record of attempt a implies a-1 failure records of that
// node before it, which the counters count.
func (v *view) allMapsSeen(splits int) bool {
	for i := 0; i < splits; i++ {
		if len(v.maps[i]) == 0 {
			return false
		}
		for _, e := range v.maps[i] {
			if ownFailures(v.mapFails[i], e.node) < e.val.Attempt-1 {
				return false
			}
		}
	}
	for p, cs := range v.commits {
		for _, e := range cs {
			if ownFailures(v.redFails[p], e.node) < e.val.Attempt-1 {
				return false
			}
		}
	}
	return true
}

// counters sums the accepted tasks' counters and counts attempts.
func (v *view) counters(splits int) job.Counters {
	c := job.Counters{}
	launchedMaps, failedMaps := 0, 0
	for i := 0; i < splits; i++ {
		launchedMaps += len(v.maps[i])
		failedMaps += len(v.mapFails[i])
		if e, ok := lowest(v.maps[i], nil); ok {
			c.Merge(e.val.Counters)
			if e.val.Local {
				c.Add(job.DATA_LOCAL_MAPS, 1)
			}
		}
	}
	c.Add(job.TOTAL_LAUNCHED_MAPS, int64(launchedMaps+failedMaps))
	c.Add(job.NUM_FAILED_MAPS, int64(failedMaps))
	if !v.rec.MapOnly {
		launched, failed := 0, 0
		for p := 0; p < v.rec.Reducers; p++ {
			launched += len(v.commits[p])
			failed += len(v.redFails[p])
			if e, ok := v.acceptedCommit(p); ok {
				c.Merge(e.val.Counters)
			}
		}
		c.Add(job.TOTAL_LAUNCHED_REDUCES, int64(launched+failed))
		c.Add(job.NUM_FAILED_REDUCES, int64(failed))
	}
	return c
}

// mapperOf picks the node that maps a split: the first live participant
// among the block's ring owners (so it holds the block), else the split's
// owner on the ring of live participants.
func mapperOf(jobID string, sp split, blocks *ring.Ring, live []string, liveRing *ring.Ring) string {
	if sp.gen {
		return liveRing.Owner(jobID + "/gen/" + strconv.Itoa(sp.index))
	}
	repl := max(sp.file.Replication, 1)
	for _, o := range blocks.Owners(sp.block.ID.String(), repl) {
		if slices.Contains(live, o) {
			return o
		}
	}
	return liveRing.Owner(sp.block.ID.String())
}

// reducerOf picks the node that reduces a partition: its owner on the ring
// of live participants.
func reducerOf(jobID string, part int, liveRing *ring.Ring) string {
	return liveRing.Owner(jobID + "/" + strconv.Itoa(part))
}
