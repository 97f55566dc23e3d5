package job

import (
	"maps"
	"slices"
)

// Counter names, as Hadoop names them. The names are the values, so
// Counters marshal to the same JSON and msgpack as Hadoop's counter names.
// (The upper-case Go names are Hadoop's, kept on purpose.)
const (
	// MAP_INPUT_RECORDS counts records read by map tasks.
	MAP_INPUT_RECORDS = "MAP_INPUT_RECORDS"
	// MAP_OUTPUT_RECORDS counts pairs emitted by mappers.
	MAP_OUTPUT_RECORDS = "MAP_OUTPUT_RECORDS"
	// MAP_OUTPUT_BYTES counts the key plus value bytes emitted by mappers.
	MAP_OUTPUT_BYTES = "MAP_OUTPUT_BYTES"
	// COMBINE_INPUT_RECORDS counts pairs fed to combiners.
	COMBINE_INPUT_RECORDS = "COMBINE_INPUT_RECORDS"
	// COMBINE_OUTPUT_RECORDS counts pairs emitted by combiners.
	COMBINE_OUTPUT_RECORDS = "COMBINE_OUTPUT_RECORDS"
	// SPILLED_RECORDS counts pairs written to disk by the map-side sort.
	SPILLED_RECORDS = "SPILLED_RECORDS"
	// REDUCE_SHUFFLE_BYTES counts map output bytes fetched by reducers.
	REDUCE_SHUFFLE_BYTES = "REDUCE_SHUFFLE_BYTES"
	// REDUCE_SHUFFLE_WIRE_BYTES counts the bytes reducers read from other
	// nodes' streams for those segments: compressed when the job's map
	// output compression is on (REDUCE_SHUFFLE_BYTES counts them plain,
	// and also the segments read on the node itself).
	REDUCE_SHUFFLE_WIRE_BYTES = "REDUCE_SHUFFLE_WIRE_BYTES"
	// REDUCE_SHUFFLE_REMOTE_BYTES counts the plain bytes of the segments
	// reducers fetched from other nodes: WIRE / REMOTE is the shuffle's
	// compression ratio.
	REDUCE_SHUFFLE_REMOTE_BYTES = "REDUCE_SHUFFLE_REMOTE_BYTES"
	// REDUCE_INPUT_GROUPS counts key groups fed to reducers.
	REDUCE_INPUT_GROUPS = "REDUCE_INPUT_GROUPS"
	// REDUCE_INPUT_RECORDS counts values fed to reducers, whether or not
	// the reducer read them.
	REDUCE_INPUT_RECORDS = "REDUCE_INPUT_RECORDS"
	// REDUCE_OUTPUT_RECORDS counts pairs emitted by reducers.
	REDUCE_OUTPUT_RECORDS = "REDUCE_OUTPUT_RECORDS"
	// TOTAL_LAUNCHED_MAPS counts map task attempts started.
	TOTAL_LAUNCHED_MAPS = "TOTAL_LAUNCHED_MAPS"
	// TOTAL_LAUNCHED_REDUCES counts reduce task attempts started.
	TOTAL_LAUNCHED_REDUCES = "TOTAL_LAUNCHED_REDUCES"
	// DATA_LOCAL_MAPS counts map tasks that ran on a node holding their
	// input.
	DATA_LOCAL_MAPS = "DATA_LOCAL_MAPS"
	// NUM_FAILED_MAPS counts failed map task attempts.
	NUM_FAILED_MAPS = "NUM_FAILED_MAPS"
	// NUM_FAILED_REDUCES counts failed reduce task attempts.
	NUM_FAILED_REDUCES = "NUM_FAILED_REDUCES"
	// NUM_KILLED_MAPS counts map task attempts stopped because another
	// attempt of the same task finished first (speculation's losers).
	NUM_KILLED_MAPS = "NUM_KILLED_MAPS"
	// NUM_KILLED_REDUCES counts reduce task attempts stopped because
	// another attempt of the same task committed first.
	NUM_KILLED_REDUCES = "NUM_KILLED_REDUCES"
	// NUM_SPECULATIVE_MAPS counts backup (speculative) map attempts
	// started; TOTAL_LAUNCHED_MAPS includes them once they computed.
	NUM_SPECULATIVE_MAPS = "NUM_SPECULATIVE_MAPS"
	// NUM_SPECULATIVE_REDUCES counts backup (speculative) reduce attempts
	// started; TOTAL_LAUNCHED_REDUCES includes them.
	NUM_SPECULATIVE_REDUCES = "NUM_SPECULATIVE_REDUCES"
)

// Counters maps counter names to values. It is a plain map, so it marshals
// to a JSON object and a msgpack map as is. Reads (Get, Names, Clone,
// Merge's argument) are safe on a nil Counters; Add and Merge need a non-nil
// receiver (make(Counters)). A Counters is not safe for concurrent writes.
type Counters map[string]int64

// Add adds n to the counter name, creating it (also when n is 0).
func (c Counters) Add(name string, n int64) { c[name] += n }

// Get returns the counter name, 0 if it is not set.
func (c Counters) Get(name string) int64 { return c[name] }

// Merge adds every counter of o to c.
func (c Counters) Merge(o Counters) {
	for name, n := range o {
		c[name] += n
	}
}

// Clone returns a copy of c; a nil c gives an empty, non-nil Counters.
func (c Counters) Clone() Counters {
	if c == nil {
		return make(Counters)
	}
	return maps.Clone(c)
}

// Names returns the names of c's counters, sorted.
func (c Counters) Names() []string {
	return slices.Sorted(maps.Keys(c))
}
