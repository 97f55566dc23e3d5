package worker

import (
	"fmt"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/shuffle"
)

// NewMapWriter opens a map task's shuffle output as cfg says, with the
// task's partitioner (HashPartitioner by default) and combiner, and
// returns it with the emit function its mapper writes through. A
// partitioner that puts a key outside the partitions fails the task as the
// job's own error. The agent runs it for the jobs it has built in, a
// worker for a shipped job's: one implementation, one file format.
func NewMapWriter(task job.Task, cfg shuffle.MapConfig) (*shuffle.MapWriter, func(key, value []byte) error, error) {
	part := task.Job.Partitioner
	if part == nil {
		part = job.HashPartitioner
	}
	n := cfg.Partitions
	var partErr error
	cfg.Partition = func(key []byte) int {
		p := part.Partition(key, n)
		if (p < 0 || p >= n) && partErr == nil {
			partErr = &job.UserError{Err: fmt.Errorf("partitioner put key %.64q in partition %d of %d", key, p, n)}
		}
		return p
	}
	comb, err := job.BuildCombiner(task)
	if err != nil {
		return nil, nil, err
	}
	if comb != nil {
		cfg.Combine = func(key []byte, values shuffle.ValueIter, emit func(key, value []byte) error) error {
			return comb.Reduce(key, values, job.EmitterFunc(emit))
		}
	}
	mw, err := shuffle.NewMapWriter(cfg)
	if err != nil {
		return nil, nil, err
	}
	return mw, func(key, value []byte) error {
		err := mw.Emit(key, value)
		if err != nil && partErr != nil {
			return partErr
		}
		return err
	}, nil
}
