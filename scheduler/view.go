package scheduler

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/ring"
)

// entry names the node whose map output a reducer reads.
type entry struct {
	node string
}

// view is everything the records say about one job, as this node sees it:
// the job record, its end if it ended, and every node's tasks record.
type view struct {
	rec   JobRecord
	state *StateRecord
	// nodes holds each node's tasks record, by node name; only records
	// whose key and content name the same node are kept.
	nodes map[string]*NodeTasks
}

// loadView reads a job's records. It returns false for an unknown or
// malformed job.
func loadView(recs Records, id string) (*view, bool) {
	r, ok := recs.Get(jobPrefix + id)
	if !ok {
		return nil, false
	}
	v := &view{nodes: map[string]*NodeTasks{}}
	if decode(r.Value, &v.rec) != nil {
		return nil, false
	}
	if r, ok := recs.Get(statePrefix + id); ok {
		var st StateRecord
		if decode(r.Value, &st) == nil {
			v.state = &st
		}
	}
	prefix := tasksPrefix + id + "/"
	for _, r := range recs.Scan(prefix) {
		node := strings.TrimPrefix(r.Key, prefix)
		var t NodeTasks
		if decode(r.Value, &t) == nil && t.Node == node {
			v.nodes[node] = &t
		}
	}
	return v, true
}

// live is the job's participants that are alive now, in participant order.
func (v *view) live(alive []string) []string {
	var out []string
	for _, p := range v.rec.Participants {
		if slices.Contains(alive, p) {
			out = append(out, p)
		}
	}
	return out
}

// acceptedMap is the map output of a split that reducers read: the first
// live node, in participant order, that holds it. Map outputs of dead
// nodes are invalid. A map-only job's outputs are files, durable whoever
// wrote them, so there any node's record will do.
func (v *view) acceptedMap(split int, live []string) (entry, bool) {
	for _, p := range v.rec.Participants {
		t, ok := v.nodes[p]
		if !ok || !t.Maps.Has(split) {
			continue
		}
		if !v.rec.MapOnly && !slices.Contains(live, p) {
			continue
		}
		return entry{node: p}, true
	}
	return entry{}, false
}

// mapsAccepted is the set of splits with an accepted map output
// (acceptedMap): the union of the live participants' map outputs (a
// map-only job: every participant's).
func (v *view) mapsAccepted(live []string) itemSet {
	var out itemSet
	for _, p := range v.rec.Participants {
		if t, ok := v.nodes[p]; ok && (v.rec.MapOnly || slices.Contains(live, p)) {
			out.or(&t.Maps)
		}
	}
	return out
}

// commitsAll is the set of committed partitions (committed).
func (v *view) commitsAll() itemSet {
	var out itemSet
	for _, p := range v.rec.Participants {
		if t, ok := v.nodes[p]; ok {
			out.or(&t.Commits)
		}
	}
	return out
}

// committed reports whether any node wrote partition p's output part
// (durable, so dead nodes' commits count).
func (v *view) committed(p int) bool {
	for _, n := range v.rec.Participants {
		if t, ok := v.nodes[n]; ok && t.Commits.Has(p) {
			return true
		}
	}
	return false
}

// finished reports whether task i of kind k is done in a way that stands:
// a map output on a live node (map-only: a part anywhere), a commit.
func (v *view) finished(k taskKind, i int, live []string) bool {
	if k == kindReduce {
		return v.committed(i)
	}
	_, ok := v.acceptedMap(i, live)
	return ok
}

// mapsDone reports whether every split has an accepted map output.
func (v *view) mapsDone(live []string) bool {
	all := v.mapsAccepted(live)
	return all.hasAll(v.rec.NumSplits)
}

// done reports whether every partition (or, map-only, every split) is
// committed.
func (v *view) done() bool {
	if v.rec.MapOnly {
		all := v.mapsAccepted(nil)
		return all.hasAll(v.rec.NumSplits)
	}
	all := v.commitsAll()
	return all.hasAll(v.rec.Reducers)
}

// voidRecords returns the dead nodes whose counts do not stand. Two nodes
// that counted the same task and died before either saw the other's
// record left two records that count it for good; a record holds only
// the sums of its items' counters, so that task's counters cannot be
// taken out of either. The rule: in participant order, a dead record
// stands unless it counts an item that a dead record standing before it
// counts; then it is void, and none of its counts stand (its attempt
// tallies still do). The standing dead records count disjoint items, so
// the sums are exact; the items only a void record counted are counted
// again by a live record, re-running them where no live node has done
// them (recount).
func (v *view) voidRecords(live []string) map[string]bool {
	var void map[string]bool
	var standing []*NodeTasks
	for _, p := range v.rec.Participants {
		t, ok := v.nodes[p]
		if !ok || slices.Contains(live, p) {
			continue
		}
		overlaps := false
		for _, s := range standing {
			if s.MapCounted.intersects(&t.MapCounted) || s.RedCounted.intersects(&t.RedCounted) {
				overlaps = true
				break
			}
		}
		if !overlaps {
			standing = append(standing, t)
			continue
		}
		if void == nil {
			void = map[string]bool{}
		}
		void[p] = true
	}
	return void
}

// countWinner is the counting rule: of the nodes whose record counts item
// i of kind k, the one whose count stands. A dead node's record can no
// longer change, so a dead counter wins over live ones (the first dead one
// in participant order whose record is not void); among live counters the
// first in participant order wins and the others withdraw their count. It
// returns "" when no record counts the item.
func (v *view) countWinner(k taskKind, i int, live []string) string {
	return v.countWinnerVoid(k, i, live, v.voidRecords(live))
}

func (v *view) countWinnerVoid(k taskKind, i int, live []string, void map[string]bool) string {
	firstLive := ""
	for _, p := range v.rec.Participants {
		t, ok := v.nodes[p]
		if !ok || void[p] || !t.counted(k).Has(i) {
			continue
		}
		if !slices.Contains(live, p) {
			return p
		}
		if firstLive == "" {
			firstLive = p
		}
	}
	return firstLive
}

// recount reports whether item i of kind k must run again only to be
// counted: no record whose count stands counts it, and no live node has
// done it (so no live node can count it without running it).
func (v *view) recount(k taskKind, i int, live []string, void map[string]bool) bool {
	if len(void) == 0 || v.countWinnerVoid(k, i, live, void) != "" {
		return false
	}
	for _, p := range live {
		if t, ok := v.nodes[p]; ok && t.done(k).Has(i) {
			return false
		}
	}
	return true
}

// recounts lists the items that must run again only to be counted (see
// recount): splits and partitions. Both are nil when no record is void.
func (v *view) recounts(live []string, void map[string]bool) (maps, reds map[int]bool) {
	if len(void) == 0 {
		return nil, nil
	}
	for i := 0; i < v.rec.NumSplits; i++ {
		if v.recount(kindMap, i, live, void) {
			if maps == nil {
				maps = map[int]bool{}
			}
			maps[i] = true
		}
	}
	if !v.rec.MapOnly {
		for p := 0; p < v.rec.Reducers; p++ {
			if v.recount(kindReduce, p, live, void) {
				if reds == nil {
					reds = map[int]bool{}
				}
				reds[p] = true
			}
		}
	}
	return maps, reds
}

// countsSettled reports whether the records' sums are the job's exact
// counters: every split (and, with reducers, every partition) is counted
// by a record that is not void, and no live record still counts an item
// another record wins.
func (v *view) countsSettled(live []string) bool {
	void := v.voidRecords(live)
	kinds := []struct {
		k taskKind
		n int
	}{{kindMap, v.rec.NumSplits}}
	if !v.rec.MapOnly {
		kinds = append(kinds, struct {
			k taskKind
			n int
		}{kindReduce, v.rec.Reducers})
	}
	for _, kn := range kinds {
		for i := 0; i < kn.n; i++ {
			w := v.countWinnerVoid(kn.k, i, live, void)
			if w == "" {
				return false
			}
			for _, p := range live {
				if t, ok := v.nodes[p]; ok && p != w && t.counted(kn.k).Has(i) {
					return false
				}
			}
		}
	}
	return true
}

// counters sums every record's attempt counts, and the counters of every
// record that is not void (voidRecords) among those not in live.
func (v *view) counters(live []string) job.Counters {
	c := job.Counters{}
	void := v.voidRecords(live)
	launchedMaps, failedMaps, launchedReds, failedReds := 0, 0, 0, 0
	var specMaps, specReds, killedMaps, killedReds int64
	for _, p := range v.rec.Participants {
		t, ok := v.nodes[p]
		if !ok {
			continue
		}
		if !void[p] {
			c.Merge(t.MapSum)
			c.Merge(t.RedSum)
		}
		launchedMaps += t.LaunchedMaps
		failedMaps += t.FailedMaps
		launchedReds += t.LaunchedReduces
		failedReds += t.FailedReduces
		specMaps += int64(t.SpecMaps)
		specReds += int64(t.SpecReduces)
		killedMaps += int64(t.KilledMaps)
		killedReds += int64(t.KilledReduces)
	}
	// Speculation's counters appear only when it did something, as
	// Hadoop's NUM_KILLED_* do.
	for name, n := range map[string]int64{job.NUM_SPECULATIVE_MAPS: specMaps, job.NUM_SPECULATIVE_REDUCES: specReds,
		job.NUM_KILLED_MAPS: killedMaps, job.NUM_KILLED_REDUCES: killedReds} {
		if n > 0 {
			c.Add(name, n)
		}
	}
	c.Add(job.TOTAL_LAUNCHED_MAPS, int64(launchedMaps))
	c.Add(job.NUM_FAILED_MAPS, int64(failedMaps))
	if !v.rec.MapOnly {
		c.Add(job.TOTAL_LAUNCHED_REDUCES, int64(launchedReds))
		c.Add(job.NUM_FAILED_REDUCES, int64(failedReds))
	}
	return c
}

// failures sums every node's failed attempts of one task.
func (v *view) failures(k taskKind, i int) failTally {
	var t failTally
	for _, p := range v.rec.Participants {
		n, ok := v.nodes[p]
		if !ok {
			continue
		}
		if f := n.failsOf(k, i); f != nil {
			t.user += f.N
			t.infra += f.Infra
			if t.permanent == "" {
				t.permanent = f.Permanent
			}
			if t.last == "" {
				t.last, t.lastNode = f.Last, p
			}
		}
	}
	return t
}

// mapperOf picks the node that maps a split: the first live participant
// among its first block's ring owners (so it holds the block), else the split's
// owner on the ring of live participants.
func mapperOf(jobID string, sp split, splits int, blocks *ring.Ring, live []string, liveRing *ring.Ring) string {
	if sp.gen {
		// Runs of consecutive splits go to one node, so each node's tasks
		// record holds a few ranges rather than a scattered bitmap.
		return liveRing.Owner(jobID + "/gen/" + strconv.Itoa(sp.index/genChunk(splits)))
	}
	repl := max(sp.parts[0].file.Replication, 1)
	b := sp.first().ID.String()
	for _, o := range blocks.Owners(b, repl) {
		if slices.Contains(live, o) {
			return o
		}
	}
	return liveRing.Owner(b)
}

// backupsOf lists the nodes that may run a backup attempt of a split, in
// order of preference: the live ring owners of its first block (they hold the
// data), then the live ring from the split's owner on.
func backupsOf(jobID string, sp split, splits int, blocks *ring.Ring, live []string, liveRing *ring.Ring) []string {
	var out []string
	key := jobID + "/gen/" + strconv.Itoa(sp.index/genChunk(splits))
	if !sp.gen {
		key = sp.first().ID.String()
		for _, o := range blocks.Owners(key, max(sp.parts[0].file.Replication, 1)) {
			if slices.Contains(live, o) {
				out = append(out, o)
			}
		}
	}
	for _, o := range liveRing.Owners(key, len(live)) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// genChunk is how many consecutive generator splits go to one node: a
// job has at most about 1,024 runs of them.
func genChunk(splits int) int { return max(1, splits/1024) }

// reducersOf places a job's partitions on the live participants. With
// even (JobRecord.EvenReducers), evenly: each node reduces
// ⌊reducers/len(live)⌋ or ⌈reducers/len(live)⌉ of them, partition p going
// to the first node in its rendezvous order that may take one more,
// partitions taken in order. Without it, as releases before even did:
// each partition's owner on the ring of live participants, which put 4,
// 1 and 1 of a job's 6 partitions on 3 nodes as often as not (the 4 took
// twice as long as the others). Every node computes the same answer from
// the same live set; when a participant dies, its partitions move, and
// with even a few others may.
func reducersOf(jobID string, reducers int, even bool, live []string, liveRing *ring.Ring) []string {
	out := make([]string, reducers)
	if len(live) == 0 {
		return out
	}
	if !even {
		for p := range out {
			out[p] = liveRing.Owner(partitionKey(jobID, p))
		}
		return out
	}
	// Every node takes floor partitions; extra of them take one more.
	floor, extra := reducers/len(live), reducers%len(live)
	count := make(map[string]int, len(live))
	for p := range out {
		for _, n := range rendezvousOrder(jobID, p, live) {
			if c := count[n]; c < floor || c == floor && extra > 0 {
				if c == floor {
					extra--
				}
				out[p] = n
				count[n]++
				break
			}
		}
	}
	return out
}

// partitionKey names partition p of a job on a ring.
func partitionKey(jobID string, p int) string { return jobID + "/" + strconv.Itoa(p) }

// reducerOrder is partition p's order of preference among the live
// participants, where a backup attempt of its reduce may run: its
// rendezvous order with even (reducersOf's candidates), else its owners
// on the ring of live participants.
func reducerOrder(jobID string, p int, even bool, live []string, liveRing *ring.Ring) []string {
	if !even {
		return liveRing.Owners(partitionKey(jobID, p), len(live))
	}
	return rendezvousOrder(jobID, p, live)
}

// rendezvousOrder is partition p's rendezvous order among the live
// participants: by a hash of the job, the partition and the node,
// highest first.
func rendezvousOrder(jobID string, p int, live []string) []string {
	type scored struct {
		node  string
		score uint64
	}
	key := partitionKey(jobID, p) + "/"
	ss := make([]scored, len(live))
	for i, n := range live {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte(n))
		ss[i] = scored{n, mix64(h.Sum64())}
	}
	slices.SortFunc(ss, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return strings.Compare(a.node, b.node)
	})
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.node
	}
	return out
}

// mix64 is splitmix64's finalizer: FNV's high bits barely move between
// keys that differ in their last bytes.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
