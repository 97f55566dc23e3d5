package job

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Sampler reads a bounded sample of a job's input, for Job.Prepare.
type Sampler interface {
	// Sample returns the sample keys (see ReadSample: a KeyValueInput
	// record's key, a TextInput record's line) of the first perSplit
	// records of each of up to splits input splits spread evenly over the
	// input (SampleSplits), in split order and, within a split, in record
	// order. The slices are the caller's. splits or perSplit < 1 gives no
	// keys. A split with fewer records gives what it has.
	Sample(ctx context.Context, splits, perSplit int) ([][]byte, error)
}

// SamplerFunc adapts a function to Sampler.
type SamplerFunc func(ctx context.Context, splits, perSplit int) ([][]byte, error)

// Sample calls f(ctx, splits, perSplit).
func (f SamplerFunc) Sample(ctx context.Context, splits, perSplit int) ([][]byte, error) {
	return f(ctx, splits, perSplit)
}

// NewSampler returns a Sampler over the inputs of a sequential run, each
// input one split, read under format (the job's Input). It opens the
// inputs it samples when Sample is called, and closes them.
func NewSampler(inputs []Input, format InputFormat) Sampler {
	return &inputSampler{inputs: inputs, format: format}
}

type inputSampler struct {
	inputs []Input
	format InputFormat
}

func (s *inputSampler) Sample(ctx context.Context, splits, perSplit int) ([][]byte, error) {
	var keys [][]byte
	for _, i := range SampleSplits(len(s.inputs), splits) {
		in := s.inputs[i]
		rc, err := in.Open()
		if err != nil {
			return nil, fmt.Errorf("sample %s: open: %w", in.Path, err)
		}
		k, err := ReadSample(ctx, rc, s.format, in.Offset, perSplit)
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err != nil {
			return nil, fmt.Errorf("sample %s: %w", in.Path, err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// SampleSplits returns which of n splits a Sampler reads to sample up to
// splits of them, spread evenly: all n when n <= splits, else the splits
// i*n/splits for i in [0, splits). Every runner's Sampler chooses this way.
func SampleSplits(n, splits int) []int {
	if n <= 0 || splits <= 0 {
		return nil
	}
	k := min(n, splits)
	idx := make([]int, k)
	for i := range idx {
		idx[i] = int(int64(i) * int64(n) / int64(k))
	}
	return idx
}

// errSampleDone stops ReadSample's read once it has its records.
var errSampleDone = errors.New("sample complete")

// ReadSample returns copies of the sample keys of the first n records of r,
// read under f from baseOffset (as ReadRecords reads them). A record's
// sample key is what a job keys on: the key of a KeyValueInput record, the
// line of a TextInput record (TextInput's key, a file offset, tells nothing
// of the data). Every runner's Sampler reads splits through it, so that
// Prepare sees the same kind of sample everywhere. n < 1 gives no keys; it
// stops at the first error of r or when ctx is done.
func ReadSample(ctx context.Context, r io.Reader, f InputFormat, baseOffset int64, n int) ([][]byte, error) {
	if n < 1 {
		return nil, nil
	}
	var (
		arena []byte
		ends  []int
	)
	err := ReadRecords(r, f, baseOffset, func(key, value []byte) error {
		if len(ends)%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if f == TextInput {
			key = value
		}
		arena = append(arena, key...)
		ends = append(ends, len(arena))
		if len(ends) == n {
			return errSampleDone
		}
		return nil
	})
	if err != nil && !errors.Is(err, errSampleDone) {
		return nil, err
	}
	keys := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		keys[i] = arena[start:end:end]
		start = end
	}
	return keys, nil
}
