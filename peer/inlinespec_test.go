package peer_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/scheduler"
)

// TestSmallJobSpecInRecord: a job whose spec fits MaxInlineSpecBytes
// carries it in its job record, which every node reads, and stores no spec
// block; a job of many input files still gets a spec block. Both outputs
// equal the sequential run's.
func TestSmallJobSpecInRecord(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := context.Background()
	small := map[string][]byte{"/in/one.txt": []byte("the quick brown fox jumps over the lazy dog the end\n")}
	put(t, c.Node(0), "/in/one.txt", small["/in/one.txt"], blockstore.MinBlockSize)
	many := map[string][]byte{}
	var manyOrder []string
	for i := range 24 {
		p := fmt.Sprintf("/many/file-with-a-longer-name-%02d.txt", i)
		many[p] = []byte(fmt.Sprintf("line %d of many\nalpha beta %d\n", i, i%3))
		manyOrder = append(manyOrder, p)
		put(t, c.Node(i%3), p, many[p], blockstore.MinBlockSize)
	}
	for _, tc := range []struct {
		name   string
		inputs map[string][]byte
		order  []string
		inline bool
	}{
		{"one-line", small, []string{"/in/one.txt"}, true},
		{"many-files", many, manyOrder, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := "/out/" + tc.name
			rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: tc.order, Output: out, Reducers: 2})
			if err != nil {
				t.Fatal(err)
			}
			if inline := len(rec.SpecInline) > 0; inline != tc.inline || inline == !rec.Spec.IsZero() {
				t.Fatalf("spec of %d bytes: in the record %v (want %v), spec block %q", rec.SpecBytes, inline, tc.inline, rec.Spec.Short())
			}
			if !rec.EvenReducers {
				t.Fatal("every member is of this release, but the job's partitions are not placed evenly (EvenReducers)")
			}
			// Every node holds the record as written, spec included.
			for i := range 3 {
				clustertest.Eventually(t, 10*time.Second, func() error {
					r, ok := c.Node(i).Records().Get("job/" + rec.ID)
					if !ok {
						return fmt.Errorf("%s has no record of %s", c.Node(i).Name(), rec.ID)
					}
					var got scheduler.JobRecord
					if err := msgpack.Unmarshal(r.Value, &got); err != nil {
						return err
					}
					if !bytes.Equal(got.SpecInline, rec.SpecInline) || got.Spec != rec.Spec || got.EvenReducers != rec.EvenReducers {
						return fmt.Errorf("%s's record of %s has another spec", c.Node(i).Name(), rec.ID)
					}
					return nil
				})
			}
			st := waitJob(t, c.Node(2), rec.ID, 60*time.Second)
			if st.State != scheduler.StateSucceeded {
				t.Fatalf("job %s: %s", st.State, st.Error)
			}
			if w := st.Wire(); (w.Spec == "") != tc.inline {
				t.Errorf("the API names spec %q", w.Spec)
			}
			clustertest.Eventually(t, 10*time.Second, func() error {
				if es, _ := c.Node(0).FS().List(out); len(es) != 3 {
					return fmt.Errorf("%d files in %s", len(es), out)
				}
				return nil
			})
			got, _ := readParts(t, c.Node(0), out)
			if want := sequential(t, "wordcount", nil, tc.inputs, tc.order, 2); !bytes.Equal(got, want) {
				t.Fatalf("distributed output %q differs from sequential %q", got, want)
			}
		})
	}
}
