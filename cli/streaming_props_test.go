package cli

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStreamingProperties(t *testing.T) {
	p, err := parseStreamingProperties([]string{
		"mapreduce.task.timeout=20000", "mapreduce.job.reduces=4", "mapreduce.job.name=my job",
		"stream.num.map.output.key.fields=2", "mapreduce.output.fileoutputformat.compress=true",
		"mapreduce.job.reduces=4",
	})
	if err != nil {
		t.Fatal(err)
	}
	if *p.timeout != 20*time.Second || *p.reducers != 4 || p.params["map_output_key_fields"] != "2" || p.outputCodec != "gzip" {
		t.Errorf("%+v", p)
	}
	if !slices.Contains(p.env, "mapreduce_job_name=my job") || !slices.Contains(p.env, "stream_num_map_output_key_fields=2") {
		t.Errorf("env %v", p.env)
	}
	p, err = parseStreamingProperties([]string{"mapreduce.output.fileoutputformat.compress=false", "mapreduce.output.fileoutputformat.compress.codec=org.apache.hadoop.io.compress.ZStandardCodec"})
	if err != nil || p.outputCodec != "" {
		t.Errorf("compress=false: %q, %v", p.outputCodec, err)
	}
	p, err = parseStreamingProperties([]string{"mapreduce.output.fileoutputformat.compress=TRUE", "mapreduce.output.fileoutputformat.compress.codec=org.apache.hadoop.io.compress.ZStandardCodec"})
	if err != nil || p.outputCodec != "zstd" {
		t.Errorf("zstd: %q, %v", p.outputCodec, err)
	}
	for kv, want := range map[string]string{
		"mapreduce.job.maps=3":           "unknown property",
		"x":                              "want NAME=VALUE",
		"mapreduce.job.reduces=-1":       "want a whole number",
		"mapreduce.task.timeout=soon":    "want milliseconds",
		"num.key.fields.for.partition=0": "want a number of fields",
		"mapreduce.output.fileoutputformat.compress=maybe":       "want true or false",
		"mapreduce.output.fileoutputformat.compress.codec=gzip":  "needs -D mapreduce.output.fileoutputformat.compress=true",
		"mapreduce.partition.keycomparator.options=-k1,1":        "needs -D mapreduce.job.output.key.comparator.class",
		"mapreduce.job.output.key.comparator.class=MyComparator": "KeyFieldBasedComparator only",
		"mapreduce.input.fileinputformat.split.maxsize=0":        "want a number of bytes",
	} {
		if _, err := parseStreamingProperties([]string{kv}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("-D %s: err %v, want %q", kv, err, want)
		}
	}
	if _, err := parseStreamingProperties([]string{"mapreduce.job.reduces=2", "mapreduce.job.reduces=3"}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("twice: %v", err)
	}
}
