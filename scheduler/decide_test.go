package scheduler

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/job"
)

// TestDecideScenarios runs the scenario files in testdata/decide/: each
// case sets up a view (the job, who is alive, this node, placement, every
// node's tasks record, what runs here) and lists, after "----", exactly the
// actions decide must return, in order. A case whose expectation is empty
// says nothing may happen (e.g. never run a split a valid record covers).
//
//	case NAME
//	job splits=N reducers=N [maponly] [attempts=N]
//	participants a b c
//	alive a b
//	self a
//	ender b              (who ends a job that succeeded; default: any node)
//	budget 2             (map attempts this step may start; default all)
//	mappers a a b        (the mapper of each split)
//	reducers a b         (the reducer of each partition)
//	running map 1        (a task already running on self)
//	tasks NODE maps=0-2,5 mapcounted=… commits=… redcounted=… fail=map:3:2:msg …
//	      running=map:3:START[:aN][:backup] maptime=MS/N redtime=MS/N
//	                     (attempt N, default 1, that NODE runs since START ms; the summed wall
//	                     time of its N finished attempts; self's running
//	                     attempts also count as running on self)
//	now MS               (the step's time; default 0)
//	idle N               (idle compute slots on self; default 2)
//	spec off|slowdown=F mindone=F minruntime=MS (default: the defaults)
//	backups map 3 c b    (backup candidates of a task; default participants)
//	waiting map 1 waited=12s [retry] [err=…]  (a task of self waiting for its input)
//	maxwait 10m          (how long a task may wait for its input; default 10m)
//	----
//	run map 3 attempt 1
func TestDecideScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/decide/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files: %v", err)
	}
	for _, file := range files {
		for _, sc := range readScenarios(t, file) {
			t.Run(filepath.Base(file)+"/"+sc.name, func(t *testing.T) {
				got := decide(sc.in)
				var lines []string
				for _, a := range got {
					lines = append(lines, a.String())
				}
				if !slices.Equal(lines, sc.want) {
					t.Errorf("%s:%d: decide returned\n\t%s\nwant\n\t%s", file, sc.line, strings.Join(lines, "\n\t"), strings.Join(sc.want, "\n\t"))
				}
			})
		}
	}
}

type scenario struct {
	name string
	line int
	in   decideInput
	want []string
}

func readScenarios(t *testing.T, file string) []scenario {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []scenario
	var cur *scenario
	var running []itemKey
	expect := false
	sc := bufio.NewScanner(f)
	n := 0
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s:%d: %s", file, n, fmt.Sprintf(format, args...))
	}
	var backups map[itemKey][]string
	finish := func() {
		if cur != nil {
			rs := slices.Clone(running)
			if own, ok := cur.in.v.nodes[cur.in.self]; ok {
				for _, r := range own.Running {
					rs = append(rs, itemKey{r.Kind, r.Index})
				}
			}
			cur.in.running = func(k taskKind, i int) bool { return slices.Contains(rs, itemKey{k, i}) }
			if err := cur.in.spec.validate(); err != nil {
				fail("%v", err)
			}
			if bs := backups; len(bs) > 0 {
				parts := cur.in.v.rec.Participants
				cur.in.backups = func(k taskKind, i int) []string {
					if b, ok := bs[itemKey{k, i}]; ok {
						return b
					}
					return parts
				}
			}
			out = append(out, *cur)
		}
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "case" {
			finish()
			cur = &scenario{name: strings.Join(f[1:], "_"), line: n, in: decideInput{v: &view{nodes: map[string]*NodeTasks{}}}}
			cur.in.v.rec.MaxAttempts = 4
			cur.in.idle = 2
			cur.in.maxWait = 10 * time.Minute
			running, expect, backups = nil, false, map[itemKey][]string{}
			continue
		}
		if cur == nil {
			fail("%q before the first case", line)
		}
		if expect {
			cur.want = append(cur.want, line)
			continue
		}
		v := cur.in.v
		switch f[0] {
		case "----":
			expect = true
		case "job":
			for _, kv := range f[1:] {
				k, val, _ := strings.Cut(kv, "=")
				switch k {
				case "splits":
					v.rec.NumSplits = atoi(t, val)
				case "reducers":
					v.rec.Reducers = atoi(t, val)
				case "attempts":
					v.rec.MaxAttempts = atoi(t, val)
				case "id":
					v.rec.ID = val
				case "maponly":
					v.rec.MapOnly = true
				case "nospecmaps":
					v.rec.NoSpeculativeMaps = true
				case "nospecreduces":
					v.rec.NoSpeculativeReduces = true
				case "ended":
					v.state = &StateRecord{State: val}
				default:
					fail("job: unknown %q", kv)
				}
			}
		case "participants":
			v.rec.Participants = f[1:]
		case "alive":
			cur.in.live = f[1:]
		case "self":
			cur.in.self = f[1]
		case "ender":
			cur.in.ender = f[1]
		case "budget":
			cur.in.mapBudget = atoi(t, f[1])
		case "mappers":
			cur.in.mappers = f[1:]
		case "reducers":
			cur.in.reducers = f[1:]
		case "running":
			running = append(running, itemKey{parseKind(f[1]), atoi(t, f[2])})
		case "now":
			cur.in.now = int64(atoi(t, f[1]))
		case "idle":
			cur.in.idle = atoi(t, f[1])
		case "backups":
			backups[itemKey{parseKind(f[1]), atoi(t, f[2])}] = f[3:]
		case "spec":
			for _, kv := range f[1:] {
				k, val, _ := strings.Cut(kv, "=")
				var err error
				switch k {
				case "off":
					cur.in.spec.Off = true
				case "slowdown":
					cur.in.spec.Slowdown, err = strconv.ParseFloat(val, 64)
				case "mindone":
					cur.in.spec.MinDone, err = strconv.ParseFloat(val, 64)
				case "minruntime":
					cur.in.spec.MinRuntime = int64(atoi(t, val))
				default:
					fail("spec: unknown %q", kv)
				}
				if err != nil {
					fail("spec: %v", err)
				}
			}
		case "waiting":
			// err= takes the rest of the line.
			fields, msg, hasErr := strings.Cut(line, " err=")
			f := strings.Fields(fields)
			if len(f) < 3 {
				fail("waiting KIND INDEX [waited=D] [retry] [err=MSG]")
			}
			w := taskWait{k: parseKind(f[1]), i: atoi(t, f[2]), err: "input unavailable"}
			if hasErr {
				w.err = msg
			}
			for _, kv := range f[3:] {
				k, val, _ := strings.Cut(kv, "=")
				switch k {
				case "waited":
					d, err := time.ParseDuration(val)
					if err != nil {
						fail("waited: %v", err)
					}
					w.waited = d
				case "retry":
					w.retry = true
				default:
					fail("waiting: unknown %q", kv)
				}
			}
			cur.in.waits = append(cur.in.waits, w)
		case "maxwait":
			d, err := time.ParseDuration(f[1])
			if err != nil {
				fail("maxwait: %v", err)
			}
			cur.in.maxWait = d
		case "tasks":
			nt := &NodeTasks{Node: f[1]}
			for _, kv := range f[2:] {
				k, val, _ := strings.Cut(kv, "=")
				switch k {
				case "maps":
					nt.Maps = parseSet(t, val)
				case "mapcounted":
					nt.MapCounted = parseSet(t, val)
				case "commits":
					nt.Commits = parseSet(t, val)
				case "redcounted":
					nt.RedCounted = parseSet(t, val)
				case "fail":
					parts := strings.SplitN(val, ":", 4)
					if len(parts) != 4 {
						fail("fail=KIND:INDEX:N:MSG, got %q", val)
					}
					kind := kindMap
					if parts[0] == "reduce" {
						kind = kindReduce
					}
					nt.Fails = append(nt.Fails, taskFails{Kind: kind, Index: atoi(t, parts[1]), N: atoi(t, parts[2]), Last: parts[3]})
				case "running":
					parts := strings.Split(val, ":")
					if len(parts) < 3 {
						fail("running=KIND:INDEX:START[:aN][:backup], got %q", val)
					}
					r := runningTask{Kind: parseKind(parts[0]), Index: atoi(t, parts[1]), Start: int64(atoi(t, parts[2])), Attempt: 1}
					for _, p := range parts[3:] {
						switch {
						case p == "backup":
							r.Backup = true
						case strings.HasPrefix(p, "a"):
							r.Attempt = atoi(t, p[1:])
						default:
							fail("running=KIND:INDEX:START[:aN][:backup], got %q", val)
						}
					}
					nt.Running = append(nt.Running, r)
				case "maptime", "redtime":
					ms, n, ok := strings.Cut(val, "/")
					if !ok {
						fail("%s=MS/N, got %q", k, val)
					}
					if k == "maptime" {
						nt.MapTime, nt.MapTimed = int64(atoi(t, ms)), atoi(t, n)
					} else {
						nt.RedTime, nt.RedTimed = int64(atoi(t, ms)), atoi(t, n)
					}
				default:
					fail("tasks: unknown %q", kv)
				}
			}
			v.nodes[f[1]] = nt
		default:
			fail("unknown command %q", f[0])
		}
	}
	finish()
	return out
}

func parseKind(s string) taskKind {
	if s == "reduce" {
		return kindReduce
	}
	return kindMap
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// parseSet reads "0-2,5" (the form itemSet.String prints).
func parseSet(t *testing.T, s string) itemSet {
	t.Helper()
	var set itemSet
	if s == "" {
		return set
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a := atoi(t, lo)
		b := a
		if isRange {
			b = atoi(t, hi)
		}
		for i := a; i <= b; i++ {
			set.Add(i)
		}
	}
	return set
}

func TestItemSetRoundTrip(t *testing.T) {
	cases := map[string]func(*itemSet){
		"empty": func(*itemSet) {},
		"range": func(s *itemSet) {
			for i := 0; i < 100000; i++ {
				s.Add(i)
			}
		},
		"scattered": func(s *itemSet) {
			for i := 0; i < 100000; i += 3 {
				s.Add(i)
			}
		},
		"few": func(s *itemSet) { s.Add(5); s.Add(6); s.Add(70000) },
	}
	for name, fill := range cases {
		var s itemSet
		fill(&s)
		b := encode(&NodeTasks{Node: "a", Maps: s, MapCounted: s.clone()})
		var back NodeTasks
		if err := decode(b, &back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if back.Maps.String() != s.String() || back.Maps.Len() != s.Len() {
			t.Fatalf("%s: round trip changed the set (%d items, now %d)", name, s.Len(), back.Maps.Len())
		}
		t.Logf("%s: %d items in a record of %d bytes", name, s.Len(), len(b))
		if name == "range" && len(b) > 64 || name == "scattered" && len(b) > 13000 {
			t.Fatalf("%s: %d bytes", name, len(b))
		}
	}
	var bad NodeTasks
	for _, raw := range [][]byte{{setRuns, 0xff}, {setBitmap, 1, 2, 3}, {9}} {
		b := encode(map[string]any{"n": "a", "m": raw})
		if decode(b, &bad) == nil {
			t.Errorf("item set %v decoded", raw)
		}
	}
}

// TestCountsExactlyOnce drives two nodes' own records through a task that
// ran on both: the counts settle so the job's counters count it once.
func TestCountsExactlyOnce(t *testing.T) {
	v := &view{rec: JobRecord{NumSplits: 1, MapOnly: true, MaxAttempts: 4, Participants: []string{"a", "b"}}, nodes: map[string]*NodeTasks{}}
	own := map[string]*ownTasks{}
	for _, n := range []string{"a", "b"} {
		o := &ownTasks{t: &NodeTasks{Node: n}, items: map[itemKey]job.Counters{}, dir: t.TempDir()}
		if err := o.finished(itemKey{kindMap, 0}, job.Counters{job.MAP_INPUT_RECORDS: 7}, 0); err != nil {
			t.Fatal(err)
		}
		own[n] = o
		v.nodes[n] = o.t
	}
	live := []string{"a", "b"}
	if v.countsSettled(live) {
		t.Fatal("settled while both count split 0")
	}
	acts := decide(decideInput{v: v, self: "b", live: live, mappers: []string{"a"}, running: func(taskKind, int) bool { return false }})
	if len(acts) != 2 || acts[0].String() != "uncount map 0" {
		t.Fatalf("b: %v", acts)
	}
	own["b"].uncount(itemKey{kindMap, 0})
	if !v.countsSettled(live) {
		t.Fatal("not settled after b withdrew")
	}
	if got := v.counters(live); got[job.MAP_INPUT_RECORDS] != 7 || got[job.TOTAL_LAUNCHED_MAPS] != 2 {
		t.Fatalf("counters %v", got)
	}
	acts = decide(decideInput{v: v, self: "a", live: live, mappers: []string{"a"}, running: func(taskKind, int) bool { return false }})
	if len(acts) != 1 || acts[0].String() != "end succeeded" {
		t.Fatalf("a: %v", acts)
	}
}

// TestDeadDuplicatesCountOnce: two nodes counted the same partition and
// died before either saw the other's record. The job's counters count it
// once: the later record is void, and the partition only it counted runs
// again on the live node and is counted there.
func TestDeadDuplicatesCountOnce(t *testing.T) {
	rec := JobRecord{NumSplits: 1, Reducers: 2, MaxAttempts: 4, Participants: []string{"a", "b", "c"}}
	set := func(items ...int) itemSet {
		var s itemSet
		for _, i := range items {
			s.Add(i)
		}
		return s
	}
	v := &view{rec: rec, nodes: map[string]*NodeTasks{
		// a mapped the split and reduced partition 0.
		"a": {Node: "a", Maps: set(0), MapCounted: set(0), Commits: set(0), RedCounted: set(0),
			MapSum: job.Counters{job.MAP_INPUT_RECORDS: 10}, RedSum: job.Counters{job.REDUCE_INPUT_RECORDS: 3},
			LaunchedMaps: 1, LaunchedReduces: 1},
		// b reduced both partitions (it thought a had died).
		"b": {Node: "b", Commits: set(0, 1), RedCounted: set(0, 1),
			RedSum: job.Counters{job.REDUCE_INPUT_RECORDS: 3 + 4}, LaunchedReduces: 2},
	}}
	live := []string{"c"}
	in := decideInput{v: v, self: "c", live: live, mappers: []string{"c"}, reducers: []string{"c", "c"}, running: func(taskKind, int) bool { return false }}
	var got []string
	for _, a := range decide(in) {
		got = append(got, a.String())
	}
	if want := []string{"run map 0 attempt 1", "run reduce 1 attempt 1"}; !slices.Equal(got, want) {
		t.Fatalf("decide: %q, want %q", got, want)
	}
	// c reran them and counted what no standing record counts.
	v.nodes["c"] = &NodeTasks{Node: "c", Maps: set(0), Commits: set(1), RedCounted: set(1),
		RedSum: job.Counters{job.REDUCE_INPUT_RECORDS: 4}, LaunchedMaps: 1, LaunchedReduces: 1}
	got = nil
	for _, a := range decide(in) {
		got = append(got, a.String())
	}
	if want := []string{"end succeeded"}; !slices.Equal(got, want) {
		t.Fatalf("decide after the rerun: %q, want %q", got, want)
	}
	c := v.counters(live)
	if c[job.MAP_INPUT_RECORDS] != 10 || c[job.REDUCE_INPUT_RECORDS] != 7 {
		t.Fatalf("counters %v: want 10 map input and 7 reduce input records", c)
	}
	if c[job.TOTAL_LAUNCHED_REDUCES] != 4 || c[job.TOTAL_LAUNCHED_MAPS] != 2 {
		t.Fatalf("counters %v: every attempt is still launched", c)
	}
}

// TestItemSetOps checks the set operations decide uses against a plain
// map, on random sets (seeded; the seed is printed).
func TestItemSetOps(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	for round := 0; round < 200; round++ {
		n := rng.Intn(300)
		var a, b itemSet
		ma, mb := map[int]bool{}, map[int]bool{}
		if rng.Intn(2) == 0 {
			from, to := rng.Intn(n+1), rng.Intn(n+1)
			a.addRange(from, to)
			for i := from; i < to; i++ {
				ma[i] = true
			}
		}
		for k := rng.Intn(n + 1); k > 0; k-- {
			i, j := rng.Intn(n+1), rng.Intn(n+1)
			a.Add(i)
			ma[i] = true
			b.Add(j)
			mb[j] = true
		}
		and, andNot, or := a.and(&b), a.andNot(&b), a.clone()
		or.or(&b)
		all := true
		for i := 0; i < n+70; i++ {
			if and.Has(i) != (ma[i] && mb[i]) || andNot.Has(i) != (ma[i] && !mb[i]) || or.Has(i) != (ma[i] || mb[i]) {
				t.Fatalf("round %d item %d: and %v andNot %v or %v; a %v b %v", round, i, and.Has(i), andNot.Has(i), or.Has(i), ma[i], mb[i])
			}
			if a.Has(i) != ma[i] {
				t.Fatalf("round %d item %d: Has %v, want %v", round, i, a.Has(i), ma[i])
			}
			below := 0
			for j := 0; j < i; j++ {
				if ma[j] {
					below++
				}
			}
			if got := a.countBelow(i); got != below {
				t.Fatalf("round %d: countBelow(%d) %d, want %d", round, i, got, below)
			}
			if i > 0 && !ma[i-1] {
				all = false
			}
			if got := a.hasAll(i); got != all {
				t.Fatalf("round %d: hasAll(%d) %v, want %v", round, i, got, all)
			}
		}
		if a.intersects(&b) != (and.Len() > 0) {
			t.Fatalf("round %d: intersects %v, and has %d", round, a.intersects(&b), and.Len())
		}
	}
}
