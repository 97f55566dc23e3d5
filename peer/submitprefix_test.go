package peer

import (
	"slices"
	"testing"

	"shoal.dev/shoal/scheduler"
)

// TestSubmitPrefixes: the record prefixes a submission pulls cover each
// input (a glob up to its first wildcard, a path as it will be cleaned)
// and the output, once each; a path that is not absolute pulls every file
// record.
func TestSubmitPrefixes(t *testing.T) {
	for _, tc := range []struct {
		inputs []string
		output string
		want   []string
	}{
		{[]string{"/in/a.txt"}, "/out", []string{"file//in/a.txt", "file//out"}},
		{[]string{"/in/", "/in"}, "/out/", []string{"file//in", "file//out"}},
		{[]string{"/logs/2024-*/x.gz", "/a/./b//c"}, "/o", []string{"file//logs/2024-", "file//a/b/c", "file//o"}},
		{[]string{"/logs/*"}, "/o", []string{"file//logs", "file//o"}},
		{[]string{"/"}, "/o", []string{"file/", "file//o"}},
		{[]string{"relative/x"}, "", []string{"file/"}},
	} {
		got := submitPrefixes(scheduler.SubmitRequest{Inputs: tc.inputs, Output: tc.output})
		if !slices.Equal(got, tc.want) {
			t.Errorf("inputs %q, output %q: %q, want %q", tc.inputs, tc.output, got, tc.want)
		}
	}
}
