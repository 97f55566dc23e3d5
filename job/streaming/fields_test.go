package streaming

import (
	"errors"
	"testing"
)

func TestFieldSplit(t *testing.T) {
	for _, tc := range []struct {
		sep        string
		fields     int
		line, k, v string
	}{
		{"\t", 1, "a\tb\tc", "a", "b\tc"},
		{"\t", 2, "a\tb\tc", "a\tb", "c"},
		{"\t", 2, "a\tb", "a\tb", ""},
		{"\t", 3, "a\tb", "a\tb", ""},
		{".", 2, "x.y.z.w", "x.y", "z.w"},
		{"::", 1, "x::y::z", "x", "y::z"},
		{"\t", 1, "nokey", "nokey", ""},
		{"\t", 2, "a\tb\t", "a\tb", ""},
	} {
		k, v := fieldSplit{sep: []byte(tc.sep), keyFields: tc.fields}.split([]byte(tc.line))
		if string(k) != tc.k || string(v) != tc.v {
			t.Errorf("split(%q, %q, %d) = %q, %q; want %q, %q", tc.line, tc.sep, tc.fields, k, v, tc.k, tc.v)
		}
	}
}

func TestKeyFieldPartitioner(t *testing.T) {
	p := &keyFieldPartitioner{sep: []byte{'\t'}, specs: []keySpec{{1, 1}}}
	// Keys that share their first field share a partition.
	for _, n := range []int{2, 3, 7} {
		for _, k := range []string{"alpha", "beta", "x"} {
			want := p.Partition([]byte(k), n)
			for _, suffix := range []string{"\t1", "\t2\tz", "\t"} {
				if got := p.Partition([]byte(k+suffix), n); got != want {
					t.Errorf("%q in %d partitions: %d, %q: %d", k+suffix, n, got, k, want)
				}
			}
		}
	}
	// Java's String.hashCode of "alpha" is 92909918; Hadoop's partition is
	// (h & MAX_INT) % n.
	if got, want := p.Partition([]byte("alpha\tx"), 7), 92909918%7; got != want {
		t.Errorf("partition of alpha: %d, want Hadoop's %d", got, want)
	}
	p2 := &keyFieldPartitioner{sep: []byte{'.'}, specs: []keySpec{{2, 2}}}
	if a, b := p2.Partition([]byte("x.k.1"), 5), p2.Partition([]byte("y.k.2"), 5); a != b {
		t.Errorf("-k2,2 by '.': %d and %d for the same second field", a, b)
	}
	if got := string(p2.fields([]byte("x"), keySpec{2, 2})); got != "" {
		t.Errorf("a missing field: %q", got)
	}
	if got := string(p.fields([]byte("a\tb\tc"), keySpec{2, 0})); got != "b\tc" {
		t.Errorf("-k2: %q", got)
	}
}

func TestKeySpecs(t *testing.T) {
	good := map[string][]keySpec{
		"-k1,1":       {{1, 1}},
		"-k1,1 -k2,2": {{1, 1}, {2, 2}},
		"-k 2,3":      {{2, 3}},
		"-k1":         {{1, 0}},
	}
	for o, want := range good {
		got, err := parseKeySpecs(o)
		if err != nil || len(got) != len(want) {
			t.Errorf("%q: %v, %v", o, got, err)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%q: %v, want %v", o, got, want)
			}
		}
	}
	for _, o := range []string{"", "-k2,1", "-k1.2,1", "-k1,1n", "-n", "-k0", "-kx"} {
		if _, err := parseKeySpecs(o); !errors.Is(err, errKeyOption) {
			t.Errorf("%q: err %v, want errKeyOption", o, err)
		}
	}
	for o, ok := range map[string]bool{"-k1,1 -k2,2": true, "-k1": true, "-k1,1 -k2": true, "-k2,2": false, "-k1,1 -k3,3": false, "-k1,2": false, "-k2,2 -k1,1": false} {
		specs, _ := parseKeySpecs(o)
		if err := checkBytewiseComparator(specs); (err == nil) != ok {
			t.Errorf("comparator %q: err %v, want ok=%v", o, err, ok)
		}
	}
}
