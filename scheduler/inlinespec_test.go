package scheduler

import (
	"context"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/blockstore"
)

// TestInlineSpec: a spec carried in its job record loads like a spec
// block, and is checked the same way (its job, its splits); a record
// naming both a block and an inline spec is refused. An older release,
// whose JobRecord lacks the field, still decodes the record.
func TestInlineSpec(t *testing.T) {
	in := InputFile{Path: "/in/one.txt", Manifest: blockstore.Sum([]byte("m")), Size: 52, Blocks: 1, BlockSize: 64 << 20, Replication: 3}
	spec := encodeSpec(JobSpec{JobID: "job-1", Inputs: []InputFile{in}, Splits: []SpecSplit{{File: 0, Block: blockstore.BlockRef{ID: blockstore.Sum([]byte("b")), Size: 52}}}})
	if len(spec) > MaxInlineSpecBytes {
		t.Fatalf("a one-file spec takes %d bytes, more than MaxInlineSpecBytes %d", len(spec), MaxInlineSpecBytes)
	}
	rec := JobRecord{ID: "job-1", Name: "wordcount", Output: "/out", Reducers: 1, MaxAttempts: 4, Replication: 3, NumSplits: 1, SpecInline: spec, SpecBytes: len(spec)}
	s := &Scheduler{}
	ls, err := s.loadSpec(context.Background(), &rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls.inputs) != 1 || ls.inputs[0].Path != in.Path || len(ls.splits) != 1 {
		t.Fatalf("loaded %+v", ls)
	}
	for _, c := range []struct {
		name string
		mod  func(r *JobRecord)
		want string
	}{
		{"another job's", func(r *JobRecord) { r.ID = "job-2" }, `belongs to job "job-1"`},
		{"other splits", func(r *JobRecord) { r.NumSplits = 2 }, "lists 1 splits, the job record 2"},
		{"garbage", func(r *JobRecord) { r.SpecInline = []byte("SHOALJS1\xc1") }, "malformed job spec"},
		{"not a spec", func(r *JobRecord) { r.SpecInline = []byte("hello") }, "not a job spec"},
		{"both", func(r *JobRecord) { r.Spec = blockstore.Sum(spec) }, "names both a spec block and a spec in its record"},
	} {
		r := rec
		c.mod(&r)
		if _, err := s.loadSpec(context.Background(), &r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// The record as the release before SpecInline decodes it.
	var old struct {
		ID        string        `msgpack:"id"`
		Spec      blockstore.ID `msgpack:"sp"`
		SpecBytes int           `msgpack:"sb"`
		NumSplits int           `msgpack:"ns"`
	}
	if err := msgpack.Unmarshal(encode(rec), &old); err != nil || old.ID != rec.ID || old.NumSplits != 1 {
		t.Fatalf("an older release decodes the record: %v %+v", err, old)
	}
}
