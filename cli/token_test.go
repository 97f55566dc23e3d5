package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shoal.dev/shoal/secret"
)

// TestTokenEveryForm: `shoal token` prints the API token of the secret
// named in each form --help shows, and fails with one line without one.
func TestTokenEveryForm(t *testing.T) {
	dir := t.TempDir()
	secA, secB := secret.Generate(), secret.Generate()
	fileA, fileB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(fileA, []byte(secA.String()+"\n"), 0o600)
	os.WriteFile(fileB, []byte(secB.String()+"\n"), 0o600)
	for _, k := range []string{"SHOAL_SECRET_FILE", "SHOAL_SECRET"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"global", []string{"shoal", "--secret-file", fileA, "token"}, map[string]string{"SHOAL_SECRET_FILE": fileB}},
		{"per-command", []string{"shoal", "token", "--secret-file", fileA}, map[string]string{"SHOAL_SECRET_FILE": fileB}},
		{"per-command over global", []string{"shoal", "--secret-file", fileB, "token", "--secret-file", fileA}, nil},
		{"SHOAL_SECRET_FILE", []string{"shoal", "token"}, map[string]string{"SHOAL_SECRET_FILE": fileA}},
		{"SHOAL_SECRET", []string{"shoal", "token"}, map[string]string{"SHOAL_SECRET": secA.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != 0 || stdout.String() != secA.APIToken()+"\n" {
				t.Fatalf("%q: exit %d, stdout %q, stderr %q; want the token of secret A", tc.args, code, stdout.String(), stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"shoal", "token"}, &stdout, &stderr)
	if code != 1 || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "shoal: no cluster secret") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("token without a secret: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"shoal", "token", "extra"}, &stdout, &stderr); code != 2 {
		t.Fatalf("token with an argument: exit %d, stderr %q", code, stderr.String())
	}
}
