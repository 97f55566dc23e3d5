package scheduler

import (
	"fmt"
	"reflect"
	"testing"

	"shoal.dev/shoal/blockstore"
)

func TestPackFiles(t *testing.T) {
	f := func(i int, size int64, node string) packFile { return packFile{index: i, size: size, node: node} }
	for _, tc := range []struct {
		name  string
		files []packFile
		max   int64
		want  [][]int
	}{
		{"none", nil, 10, nil},
		{"one node fills splits in order", []packFile{f(0, 4, "a"), f(1, 4, "a"), f(2, 4, "a"), f(3, 1, "a")}, 10, [][]int{{0, 1}, {2, 3}}},
		{"exactly full", []packFile{f(0, 5, "a"), f(1, 5, "a"), f(2, 5, "a")}, 10, [][]int{{0, 1}, {2}}},
		{"grouped by node, nodes in order of first file", []packFile{f(0, 1, "b"), f(1, 1, "a"), f(2, 1, "b"), f(3, 1, "a")}, 10, [][]int{{0, 2}, {1, 3}}},
		{"a file as large as the limit is alone", []packFile{f(0, 10, "a"), f(1, 1, "a")}, 10, [][]int{{0}, {1}}},
		{"empty files pack", []packFile{f(0, 0, "a"), f(1, 0, "a")}, 10, [][]int{{0, 1}}},
	} {
		if got := packFiles(tc.files, tc.max); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	// 10,000 files of 1 KB on 3 nodes, 128 MiB splits: one split per node.
	var many []packFile
	for i := range 10000 {
		many = append(many, f(i, 1024, fmt.Sprint("n", i%3)))
	}
	if got := packFiles(many, DefaultMaxSplitBytes); len(got) != 3 {
		t.Errorf("10,000 small files on 3 nodes: %d splits, want 3", len(got))
	}
}

// TestSplitsOf: joined spec splits make one map task; consecutive blocks
// of one file in a task are one part, which knows the blocks around it.
func TestSplitsOf(t *testing.T) {
	b := func(s string) blockstore.BlockRef {
		return blockstore.BlockRef{ID: blockstore.Sum([]byte(s)), Size: 10}
	}
	rec := &JobRecord{Inputs: []InputFile{{Path: "/big"}, {Path: "/x.gz"}, {Path: "/s1"}, {Path: "/s2"}}}
	ss := []SpecSplit{
		{File: 0, Block: b("big0"), Offset: 0},
		{File: 0, Block: b("big1"), Offset: 10},
		{File: 1, Block: b("gz0"), Offset: 0},
		{File: 1, Block: b("gz1"), Offset: 10, Join: true},
		{File: 2, Block: b("s1"), Offset: 0},
		{File: 3, Block: b("s2"), Offset: 0, Join: true},
	}
	sp, err := splitsOf(rec, ss)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp) != 4 {
		t.Fatalf("%d splits, want 4", len(sp))
	}
	if p := sp[0].parts; len(p) != 1 || p[0].prev != nil || !reflect.DeepEqual(p[0].next, []blockstore.BlockRef{b("big1")}) {
		t.Errorf("split 0: %+v", p)
	}
	if p := sp[1].parts; len(p) != 1 || p[0].prev == nil || *p[0].prev != b("big0") || len(p[0].next) != 0 || p[0].offset != 10 {
		t.Errorf("split 1: %+v", p)
	}
	if p := sp[2].parts; len(p) != 1 || len(p[0].blocks) != 2 || p[0].prev != nil || len(p[0].next) != 0 {
		t.Errorf("split 2 (the whole .gz): %+v", p)
	}
	if p := sp[3].parts; len(p) != 2 || p[0].file.Path != "/s1" || p[1].file.Path != "/s2" || sp[3].path() != "/s1 and 1 more files" {
		t.Errorf("split 3 (packed): %+v", p)
	}
	for i, s := range sp {
		if s.index != i {
			t.Errorf("split %d has index %d", i, s.index)
		}
	}
	// A spec that cuts a compressed file is refused.
	bad := []SpecSplit{{File: 1, Block: b("gz0")}, {File: 1, Block: b("gz1"), Offset: 10}}
	if _, err := splitsOf(rec, bad); err == nil {
		t.Error("a spec that cuts a .gz file into two splits was accepted")
	}
	// A spec of before Join: one task per block.
	old := []SpecSplit{{File: 2, Block: b("s1")}, {File: 3, Block: b("s2")}}
	if sp, err := splitsOf(rec, old); err != nil || len(sp) != 2 {
		t.Errorf("old spec: %d splits, %v; want 2", len(sp), err)
	}
}
