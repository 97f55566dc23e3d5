// Command topn keeps the N highest-scoring items of each key, as a Shoal
// job in a program of its own: `topn job run topn --param n=3 ...`.
//
// Input lines are KEY, ITEM and SCORE (a non-negative integer below
// 10^12), tab-separated. The mapper writes each value as the score's
// complement, zero-padded, then the item: Shoal sorts a key's values
// bytewise, so the reducer sees them highest score first (ties by item)
// and stops after N. The combiner keeps the first N of what it sees, after
// sorting them itself, as a combiner may get values in any order. Each
// output line is KEY, ITEM and SCORE.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"shoal.dev/shoal/cli"
	"shoal.dev/shoal/job"
)

func main() { os.Exit(cli.Main(os.Args, Spec())) }

const maxScore = 999_999_999_999 // 12 digits

// Spec is the topn job.
func Spec() job.Spec {
	return job.Spec{
		Name:   "topn",
		Usage:  "the N highest-scoring items of each key (lines KEY, ITEM, SCORE)",
		Params: []job.Param{{Name: "n", Default: "3", Usage: "items kept per key"}},
		Build: func(p map[string]string) (*job.Job, error) {
			n, err := strconv.Atoi(p["n"])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("param n: want a positive integer, got %q", p["n"])
			}
			keep := func(job.TaskInfo) (job.Reducer, error) {
				var vs [][]byte
				return job.ReducerFunc(func(key []byte, values job.Values, out job.Emitter) error {
					vs = vs[:0]
					for v, ok := values.Next(); ok; v, ok = values.Next() {
						vs = append(vs, bytes.Clone(v))
					}
					slices.SortFunc(vs, bytes.Compare)
					for _, v := range vs[:min(n, len(vs))] {
						if err := out.Emit(key, v); err != nil {
							return err
						}
					}
					return nil
				}), nil
			}
			return &job.Job{
				Input: job.KeyValueInput,
				NewMapper: func(job.TaskInfo) (job.Mapper, error) {
					var buf []byte
					return job.MapperFunc(func(key, value []byte, out job.Emitter) error {
						item, score, ok := bytes.Cut(value, []byte("\t"))
						s, err := strconv.ParseInt(string(score), 10, 64)
						if !ok || err != nil || s < 0 || s > maxScore {
							return job.Permanent(fmt.Errorf("line %q: want KEY, ITEM and SCORE (0 to %d), tab-separated", string(key)+"\t"+string(value), int64(maxScore)))
						}
						buf = fmt.Appendf(buf[:0], "%012d\t%s", maxScore-s, item)
						return out.Emit(key, buf)
					}), nil
				},
				NewCombiner: keep,
				NewReducer: func(job.TaskInfo) (job.Reducer, error) {
					var line []byte
					return job.ReducerFunc(func(key []byte, values job.Values, out job.Emitter) error {
						for i := 0; i < n; i++ {
							v, ok := values.Next()
							if !ok {
								break
							}
							inv, item, ok := bytes.Cut(v, []byte("\t"))
							s, err := strconv.ParseInt(string(inv), 10, 64)
							if !ok || err != nil {
								return errors.New("malformed intermediate value")
							}
							line = fmt.Appendf(append(line[:0], item...), "\t%d", maxScore-s)
							if err := out.Emit(key, line); err != nil {
								return err
							}
						}
						return nil
					}), nil
				},
			}, nil
		},
	}
}
