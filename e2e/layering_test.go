package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// allowedImports lists, for each package of ours, the packages of ours it
// may import directly. Imports point down only (see STYLE.md); a package
// missing here fails the test, so a new one must take its place in the order.
var allowedImports = map[string][]string{
	"shoal":               {"cli"},
	"shoal/cli":           {"blockstore", "job", "job/builtin", "job/streaming", "peer", "scheduler", "secret"},
	"shoal/peer":          {"blockstore", "gossip", "job", "job/builtin", "job/streaming", "mesh", "p2p", "ring", "scheduler", "secret", "shuffle"},
	"shoal/scheduler":     {"blockstore", "gossip", "job", "mesh", "ring", "shuffle"},
	"shoal/shuffle":       {"mesh", "mesh/meshtest"},
	"shoal/job":           {},
	"shoal/job/builtin":   {"job"},
	"shoal/job/streaming": {"job", "job/builtin"},
	"shoal/blockstore":    {"gossip", "mesh", "mesh/meshtest", "ring"},
	"shoal/mesh/meshtest": {"mesh"},
	"shoal/clustertest":   {"job", "peer", "secret"},
	"shoal/e2e":           {"blockstore", "clustertest", "peer", "scheduler", "secret"},
	"shoal/p2p":           {"mesh"},
	"shoal/gossip":        {},
	"shoal/ring":          {},
	"shoal/secret":        {},
	"shoal/mesh":          {},
}

func TestImportsPointDown(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}} {{join .TestImports \" \"}}", "./...")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("package %s has no place in allowedImports", pkg)
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if imp == pkg || !(imp == "shoal" || strings.HasPrefix(imp, "shoal/")) {
				continue
			}
			ok := false
			for _, a := range allowed {
				if imp == "shoal/"+a {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s, which is not below it", pkg, imp)
			}
		}
	}
}
