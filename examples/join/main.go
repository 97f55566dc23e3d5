// Command join is a reduce-side join of two inputs, as a Shoal job in a
// program of its own: `join job run join --param left=/users ...`.
//
// Both inputs hold tab-separated lines whose first field is the join key.
// The mapper knows which input a line came from (job.TaskInfo.InputFile)
// and tags its value "L" or "R"; Shoal sorts a key's values bytewise, so
// the reducer sees every left value before any right one (a secondary
// sort the job defines through its value bytes) and keeps only the left
// side in memory. Each output line is KEY, the left value and the right
// value, for every pair of a left and a right line with the same key (an
// inner join).
package main

import (
	"bytes"
	"os"
	"path"
	"strings"

	"shoal.dev/shoal/cli"
	"shoal.dev/shoal/job"
)

func main() { os.Exit(cli.Main(os.Args, Spec())) }

// Spec is the join job.
func Spec() job.Spec {
	return job.Spec{
		Name:  "join",
		Usage: "inner join of two tab-separated inputs on their first field",
		Params: []job.Param{
			{Name: "left", Required: true, Usage: "the left input: a file, or a directory of files; every other input is the right one"},
		},
		Build: func(p map[string]string) (*job.Job, error) {
			left := strings.TrimSuffix(p["left"], "/")
			return &job.Job{
				Input: job.KeyValueInput,
				NewMapper: func(info job.TaskInfo) (job.Mapper, error) {
					tag := []byte("R")
					if f := path.Clean(info.InputFile); f == left || strings.HasPrefix(f, left+"/") {
						tag = []byte("L")
					}
					var buf []byte
					return job.MapperFunc(func(key, value []byte, out job.Emitter) error {
						buf = append(append(buf[:0], tag...), value...)
						return out.Emit(key, buf)
					}), nil
				},
				NewReducer: func(job.TaskInfo) (job.Reducer, error) {
					var lefts [][]byte
					var line []byte
					return job.ReducerFunc(func(key []byte, values job.Values, out job.Emitter) error {
						lefts = lefts[:0]
						for v, ok := values.Next(); ok; v, ok = values.Next() {
							if v[0] == 'L' {
								lefts = append(lefts, bytes.Clone(v[1:]))
								continue
							}
							for _, l := range lefts {
								line = append(append(append(line[:0], l...), '\t'), v[1:]...)
								if err := out.Emit(key, line); err != nil {
									return err
								}
							}
						}
						return nil
					}), nil
				},
			}, nil
		},
	}
}
