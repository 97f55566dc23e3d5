// Command totalorder sorts the lines of its input into reduce partitions
// that are themselves in order, so that part-r-00000, part-r-00001, ...
// read one after another are the whole input sorted: a total-order sort,
// as Hadoop's TotalOrderPartitioner does it.
//
// Its Prepare step runs once, at submission: it samples the input, sorts
// the sample and picks reducers-1 cut points from it, which it returns as
// the parameter cuts. Every map task is built with them, and its
// partitioner sends a line to the partition between the cut points around
// it. On a cluster the Prepare of this shipped program runs in a worker
// process of it, and the agent reads the sample for it.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"shoal.dev/shoal/cli"
	"shoal.dev/shoal/job"
)

func main() { os.Exit(cli.Main(os.Args, Spec())) }

// Spec is the totalorder job.
func Spec() job.Spec {
	return job.Spec{
		Name:  "totalorder",
		Usage: "sort lines into partitions that are in order (samples the input first)",
		Params: []job.Param{
			{Name: "sample", Default: "1000", Usage: "lines sampled from each of up to 10 splits"},
			{Name: "cuts", Usage: "internal: the cut points Prepare chose, hex, comma-separated"},
			{Name: "prepared", Usage: "internal: set by Prepare"},
		},
		Build: build,
	}
}

func build(p map[string]string) (*job.Job, error) {
	per, err := strconv.Atoi(p["sample"])
	if err != nil || per < 1 {
		return nil, fmt.Errorf("param sample: want a positive integer, got %q", p["sample"])
	}
	var cuts [][]byte
	if p["cuts"] != "" {
		for _, h := range strings.Split(p["cuts"], ",") {
			c, err := hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("param cuts: %v", err)
			}
			cuts = append(cuts, c)
		}
	}
	return &job.Job{
		Input:  job.TextInput,
		Output: job.RawOutput,
		NewMapper: func(job.TaskInfo) (job.Mapper, error) {
			if p["prepared"] != "1" {
				return nil, job.Permanent(errors.New("totalorder: no cut points: its Prepare did not run"))
			}
			return job.MapperFunc(func(_, line []byte, out job.Emitter) error {
				return out.Emit(line, nil)
			}), nil
		},
		Partitioner: job.PartitionerFunc(func(key []byte, n int) int {
			i := sort.Search(len(cuts), func(i int) bool { return bytes.Compare(key, cuts[i]) < 0 })
			return min(i, n-1)
		}),
		NewReducer: func(job.TaskInfo) (job.Reducer, error) {
			return job.ReducerFunc(func(key []byte, values job.Values, out job.Emitter) error {
				for _, ok := values.Next(); ok; _, ok = values.Next() {
					if err := out.Emit(key, nil); err != nil {
						return err
					}
				}
				return nil
			}), nil
		},
		Prepare: func(ctx context.Context, s job.Sampler, reducers int) (map[string]string, error) {
			keys, err := s.Sample(ctx, 10, per)
			if err != nil {
				return nil, err
			}
			slices.SortFunc(keys, bytes.Compare)
			var hs []string
			for i := 1; i < reducers && len(keys) > 0; i++ {
				hs = append(hs, hex.EncodeToString(keys[i*len(keys)/reducers]))
			}
			return map[string]string{"cuts": strings.Join(hs, ","), "prepared": "1"}, nil
		},
	}, nil
}
