package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestStreamingSecondarySort: Hadoop Streaming's secondary sort — two key
// fields, a KeyFieldBasedPartitioner on the first — gives, part by part,
// the output of the same job run with --local, and the output of the
// same pipeline run with GNU sort; a user's events reach its reducer in
// time order. Unknown -D properties and classes are refused.
func TestStreamingSecondarySort(t *testing.T) {
	e, st := startFSEnv(t, 3)
	url := st["node2"][1]
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var in strings.Builder
	for i := 0; i < 20000; i++ {
		// user, time (fixed width: bytewise is numeric), event
		fmt.Fprintf(&in, "user%03d\t%08d\tev%d\n", rng.IntN(300), rng.IntN(1e8), rng.IntN(1000))
	}
	input := filepath.Join(e.dir, "events.tsv")
	if err := os.WriteFile(input, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustCLI(url, "fs", "put", input, "/ev/events.tsv", "--block-size", "64K")
	// The reducer prints each user with its events in the order it sees them.
	reducer := `awk -F'\t' '$1 != u { if (u != "") print u "\t" s; u = $1; s = "" } { s = s $3 "," } END { if (u != "") print u "\t" s }'`
	e.mustCLI(url, "streaming", "-input", "/ev", "-output", "/ev-out",
		"-D", "stream.num.map.output.key.fields=2",
		"-D", "mapreduce.partition.keypartitioner.options=-k1,1",
		"-D", "mapreduce.job.output.key.comparator.class=org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator",
		"-D", "mapreduce.partition.keycomparator.options=-k1,1 -k2,2",
		"-D", "mapreduce.job.reduces=3",
		"-D", "mapreduce.job.name=sessions",
		"-partitioner", "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
		"-inputformat", "org.apache.hadoop.mapred.TextInputFormat",
		"-mapper", "cat", "-reducer", reducer)

	// GNU sort in the C locale, the reducer over it.
	cmd := exec.Command("sh", "-c", "sort -t \"$(printf '\\t')\" -k1,1 -k2,2 "+input+" | "+reducer)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	gnu, err := cmd.Output()
	if err != nil {
		t.Fatalf("local pipeline: %v", err)
	}
	local := filepath.Join(e.dir, "local-out")
	shoal(t, nil, "job", "run", "streaming", "--local", "--input", input, "--output", local, "--reducers", "3",
		"--param", "mapper=cat", "--param", "reducer="+reducer, "--param", "map_output_key_fields=2",
		"--param", "partitioner=keyfield", "--param", "partitioner_options=-k1,1")
	var all []string
	for p := 0; p < 3; p++ {
		name := fmt.Sprintf("part-r-%05d", p)
		got := e.mustCLI(url, "fs", "cat", "/ev-out/"+name)
		want, err := os.ReadFile(filepath.Join(local, name))
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Fatalf("%s (%d bytes) differs from the --local run's (%d bytes)", name, len(got), len(want))
		}
		if got == "" {
			t.Fatalf("%s is empty: the partitioner does not spread users", name)
		}
		all = append(all, strings.Split(strings.TrimSuffix(got, "\n"), "\n")...)
	}
	// Each user is one line (all its events reached one reducer), with its
	// events in time order: the lines are GNU sort's pipeline's lines.
	slices.Sort(all)
	if strings.Join(all, "\n")+"\n" != string(gnu) {
		t.Fatalf("the job's lines differ from the GNU sort pipeline's (%d lines vs %d bytes)", len(all), len(gnu))
	}

	// Refused, each with a one-line usage error naming what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-D", "mapreduce.job.frobnicate=1"}, "-D mapreduce.job.frobnicate: unknown property"},
		{[]string{"-D", "noequals"}, "want NAME=VALUE"},
		{[]string{"-partitioner", "org.example.MyPartitioner"}, "-partitioner org.example.MyPartitioner"},
		{[]string{"-inputformat", "org.apache.hadoop.mapred.SequenceFileInputFormat"}, "-inputformat org.apache.hadoop.mapred.SequenceFileInputFormat"},
		{[]string{"-outputformat", "org.apache.hadoop.mapred.SequenceFileOutputFormat"}, "-outputformat"},
		{[]string{"-D", "mapreduce.job.output.key.comparator.class=org.apache.hadoop.mapreduce.lib.partition.KeyFieldBasedComparator", "-D", "mapreduce.partition.keycomparator.options=-k2,2nr"}, "not supported"},
		{[]string{"-D", "mapreduce.partition.keypartitioner.options=-k1,1"}, "needs -partitioner"},
		{[]string{"-D", "mapreduce.job.reduces=2", "-numReduceTasks", "3"}, "disagree"},
	} {
		args := append([]string{"streaming", "-input", "/ev", "-output", "/ev-bad", "-mapper", "cat", "-reducer", "cat"}, tc.args...)
		r := e.cli(url, args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
