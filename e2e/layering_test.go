package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// module is the module path of go.mod.
const module = "shoal.dev/shoal"

// allowedImports lists, for each package of ours (relative to module, ""
// for the root), the packages of ours it may import directly. Imports point
// down only (docs/ARCHITECTURE.md, "Packages"); a package missing here fails
// the test, so a new one must take its place in the order.
var allowedImports = map[string][]string{
	"":              {"cli"},
	"cli":           {"blockstore", "client", "clustertest", "codec", "disk", "job", "job/builtin", "job/streaming", "peer", "scheduler", "secret", "worker"},
	"peer":          {"blockstore", "claim", "client", "disk", "gossip", "job", "job/builtin", "job/streaming", "mesh", "p2p", "ring", "scheduler", "secret", "shuffle", "tasklog", "worker"},
	"scheduler":     {"blockstore", "client", "codec", "disk", "gossip", "job", "mesh", "ring", "shuffle", "tasklog", "worker"},
	"client":        {"job", "secret"},
	"worker":        {"childproc", "disk", "job", "shuffle"},
	"shuffle":       {"disk", "mesh", "mesh/meshtest"},
	"codec":         {},
	"childproc":     {},
	"tasklog":       {},
	"job":           {},
	"job/builtin":   {"job"},
	"job/streaming": {"childproc", "job", "job/builtin"},
	"blockstore":    {"disk", "gossip", "mesh", "mesh/meshtest", "ring"},
	"mesh/meshtest": {"mesh"},
	"clustertest":   {"disk", "job", "peer", "secret"},
	"e2e":           {"blockstore", "client", "clustertest", "disk", "job", "job/builtin", "nettest/netns", "peer", "scheduler", "secret"},
	"nettest/netns": {},
	"p2p":           {"mesh"},
	"gossip":        {},
	"ring":          {},
	"claim":         {"gossip", "mesh", "mesh/meshtest", "ring"},
	"secret":        {},
	"mesh":          {},
	"disk":          {},
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
		allowed, known := allowedImports[ours(pkg)]
		if !known {
			t.Errorf("package %s has no place in allowedImports", pkg)
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if imp == pkg || !(imp == module || strings.HasPrefix(imp, module+"/")) {
				continue
			}
			ok := false
			for _, a := range allowed {
				if ours(imp) == a {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s, which is not below it", pkg, imp)
			}
		}
	}
}

// ours is the path of one of the module's packages relative to the module.
func ours(pkg string) string {
	return strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
}
