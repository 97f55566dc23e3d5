package claim

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/ring"
)

var origin = time.Unix(1_700_000_000, 0)

func offset(t *testing.T, line int, s string) time.Time {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("line %d: %v", line, err)
	}
	return origin.Add(d)
}

func parseOp(s string) (Op, bool) {
	for op, name := range opNames {
		if name == s {
			return op, true
		}
	}
	return 0, false
}

// TestDecideScenarios runs testdata/decide.txt: each step feeds Decide the
// scenario's state, applies the decision to the table and checks the
// verdict.
func TestDecideScenarios(t *testing.T) {
	f, err := os.Open("testdata/decide.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		name                         string
		ttl                          time.Duration
		settled                      time.Time
		primary, exists, wrote, gone bool
		entry                        *Entry
		steps                        int
	)
	reset := func(n string) {
		name, ttl, settled, primary, exists, wrote, gone, entry = n, 10*time.Second, origin, true, false, false, false, nil
	}
	yes := func(line int, s string) bool {
		if s != "yes" && s != "no" {
			t.Fatalf("line %d: want yes or no, got %q", line, s)
		}
		return s == "yes"
	}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		w := strings.Fields(text)
		switch w[0] {
		case "scenario":
			reset(w[1])
		case "ttl":
			ttl = offset(t, line, w[1]).Sub(origin)
		case "settled":
			settled = offset(t, line, w[1])
		case "primary":
			primary = yes(line, w[1])
		case "exists":
			exists = yes(line, w[1])
		case "written":
			wrote = yes(line, w[1])
		case "gone":
			gone = yes(line, w[1])
		case "table":
			got := "empty"
			if entry != nil {
				got = fmt.Sprintf("%s %s", entry.Token, entry.Expires.Sub(origin))
			}
			want := strings.Join(w[1:], " ")
			if want != "empty" {
				want = fmt.Sprintf("%s %s", w[1], offset(t, line, w[2]).Sub(origin))
			}
			if got != want {
				t.Errorf("%s (line %d): table holds %s, want %s", name, line, got, want)
			}
		case "at":
			if len(w) < 7 || w[5] != "->" {
				t.Fatalf("line %d: want: at T OP OWNER TOKEN -> VERDICT [ARG]", line)
			}
			op, ok := parseOp(w[2])
			if !ok {
				t.Fatalf("line %d: unknown op %q", line, w[2])
			}
			in := Input{
				Now: offset(t, line, w[1]), TTL: ttl, Op: op, Kind: KindFile, Owner: w[3], Token: w[4],
				Primary: primary, SettledAt: settled, Entry: entry, Written: wrote, OwnerGone: gone,
			}
			if exists {
				in.Exists = fmt.Errorf("exists")
			}
			d := Decide(in)
			entry = d.Entry
			steps++
			got := d.Verdict.String()
			switch d.Verdict {
			case Busy:
				got += " " + d.Holder
			case Wait:
				got += " " + d.RetryAt.Sub(origin).String()
			}
			if want := strings.Join(w[6:], " "); got != want {
				t.Errorf("%s (line %d): %s gave %s, want %s", name, line, text, got, want)
			}
		default:
			t.Fatalf("line %d: unknown step %q", line, w[0])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if steps < 30 {
		t.Fatalf("only %d steps ran", steps)
	}
}

// TestSettledAt checks when a node may grant a path it did not grant
// before: a whole TTL after it started and after the last ring in which
// another member was the path's primary.
func TestSettledAt(t *testing.T) {
	ttl := 10 * time.Second
	at := func(s int) time.Time { return origin.Add(time.Duration(s) * time.Second) }
	ab := ring.New(ring.Config{}, "a", "b")
	abc := ab.With("c")
	// A key whose primary is a on {a,b} and c on {a,b,c}.
	var key string
	for i := 0; ; i++ {
		key = Key(fmt.Sprintf("/k%d", i))
		if ab.Owner(key) == "a" && abc.Owner(key) == "c" {
			break
		}
	}
	cases := []struct {
		name    string
		self    string
		history []RingChange
		want    time.Time
	}{
		{"primary since start", "a", []RingChange{{at(0), ab}}, at(10)},
		{"primary again after c left", "a", []RingChange{{at(0), ab}, {at(3), abc}, {at(5), ab}}, at(15)},
		{"c took it over on joining", "c", []RingChange{{at(0), abc}}, at(10)},
		{"a while c is there: never", "a", []RingChange{{at(0), ab}, {at(3), abc}}, time.Time{}.Add(1<<63 - 1)},
		{"b never the primary", "b", []RingChange{{at(0), ab}}, time.Time{}.Add(1<<63 - 1)},
	}
	for _, c := range cases {
		if got := SettledAt(at(0), c.history, c.self, key, ttl); !got.Equal(c.want) {
			t.Errorf("%s: settled at %v, want %v", c.name, got.Sub(origin), c.want.Sub(origin))
		}
	}
	// Pruning keeps the answer for any now.
	h := []RingChange{{at(0), ab}, {at(3), abc}, {at(5), ab}, {at(40), ab.With("d")}, {at(41), ab}}
	for now := 0; now < 60; now++ {
		p := pruneHistory(h, at(now), ttl)
		full := SettledAt(at(0), h, "a", key, ttl)
		pruned := SettledAt(at(0), p, "a", key, ttl)
		if full.After(at(now)) != pruned.After(at(now)) {
			t.Errorf("now %d: pruned history settles at %v, the full one at %v", now, pruned.Sub(origin), full.Sub(origin))
		}
		if p[len(p)-1].Ring != h[len(h)-1].Ring {
			t.Errorf("now %d: pruning dropped the current ring", now)
		}
	}
}
