package scheduler

import (
	"errors"
	"time"
)

// Speculation is the straggler rule's settings (decide's rule 7, speculate).
type Speculation struct {
	// Off: this node starts no backup attempts (agent --no-speculation).
	// Jobs can turn speculation off for themselves as well
	// (JobRecord.NoSpeculativeMaps, NoSpeculativeReduces).
	Off bool
	// Slowdown: an attempt is a straggler once it has run longer than
	// Slowdown times the mean wall time of the finished attempts of its
	// kind. Default 1.5.
	Slowdown float64
	// MinDone: the fraction of a kind's tasks that must be done before any
	// of them is judged. Default 0.5.
	MinDone float64
	// MinRuntime, in milliseconds: no attempt younger than this is a
	// straggler. Default 2000.
	MinRuntime int64
}

// errSuperseded is the cause with which a task attempt is stopped when
// another node's attempt of the same task finished first.
var errSuperseded = errors.New("another attempt of this task finished first")

// Speculation defaults.
const (
	DefaultSlowdown   = 1.5
	DefaultMinDone    = 0.5
	DefaultMinRuntime = 2 * time.Second
)

func (sp *Speculation) validate() error {
	if sp.Slowdown != 0 && sp.Slowdown < 1 || sp.MinDone < 0 || sp.MinDone > 1 || sp.MinRuntime < 0 {
		return errors.New("scheduler: speculation settings out of range")
	}
	if sp.Slowdown == 0 {
		sp.Slowdown = DefaultSlowdown
	}
	if sp.MinDone == 0 {
		sp.MinDone = DefaultMinDone
	}
	if sp.MinRuntime == 0 {
		sp.MinRuntime = DefaultMinRuntime.Milliseconds()
	}
	return nil
}
