package cli

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"sort"
	"syscall"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

// The global flags. Each client command takes them too, so both
// `shoal --addr URL members` and `shoal members --addr URL` work; a flag
// given after the command wins over one given before it, and either wins
// over the environment, then the default. No copy has an environment
// variable or a default of its own in urfave/cli: globalString resolves
// them, so that a value is known to be typed.
var (
	globalFlagEnv = map[string]string{
		"addr":        "SHOAL_ADDR",
		"secret-file": "SHOAL_SECRET_FILE",
		"ca-cert":     "SHOAL_CA_CERT",
	}
	globalFlagDefault = map[string]string{
		"addr": "http://" + peer.DefaultHTTPAddr,
	}
)

// appFlags are the app-level (global) flags.
func appFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "addr", Usage: "agent HTTP API address, http://HOST:PORT or https://HOST:PORT (default: $SHOAL_ADDR, a running ./.cluster, http://" + peer.DefaultHTTPAddr + ")"},
		&ucli.StringFlag{Name: "secret-file", Usage: "file holding the cluster secret (default: $SHOAL_SECRET_FILE; or set SHOAL_SECRET to the secret itself)"},
		&ucli.StringFlag{Name: "ca-cert", Usage: "PEM file of the CA that signed the agent's TLS certificate (default: $SHOAL_CA_CERT, the system's roots)"},
		&ucli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version"},
	}
}

// clientFlags are the global flags as a client command takes them after its
// name.
func clientFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "addr", Usage: "agent HTTP API address (default: the global --addr, $SHOAL_ADDR, a running ./.cluster, http://" + peer.DefaultHTTPAddr + ")"},
		&ucli.StringFlag{Name: "secret-file", Usage: "file holding the cluster secret (default: the global --secret-file, $SHOAL_SECRET_FILE; or set SHOAL_SECRET)"},
		&ucli.StringFlag{Name: "ca-cert", Usage: "PEM file of the CA that signed the agent's TLS certificate (default: the global --ca-cert, $SHOAL_CA_CERT, the system's roots)"},
	}
}

// typedGlobal is the nearest copy of a global flag typed on the command
// line: the command's own before its parents' and the app's.
func typedGlobal(c *ucli.Context, name string) string {
	for _, l := range c.Lineage() {
		if l.Command == nil || !hasFlag(l.Command.Flags, name) {
			continue
		}
		if v := l.String(name); v != "" {
			return v
		}
	}
	return ""
}

// globalString is a global flag's value as the user meant it: typed, else
// its environment variable, else its default.
func globalString(c *ucli.Context, name string) string {
	if v := typedGlobal(c, name); v != "" {
		return v
	}
	if v := os.Getenv(globalFlagEnv[name]); v != "" {
		return v
	}
	return globalFlagDefault[name]
}

// globalSet reports whether a global flag was typed or is in the
// environment.
func globalSet(c *ucli.Context, name string) bool {
	return typedGlobal(c, name) != "" || os.Getenv(globalFlagEnv[name]) != ""
}

func hasFlag(flags []ucli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// loadSecret reads --secret-file, else $SHOAL_SECRET; neither is the zero
// Secret.
func loadSecret(c *ucli.Context) (secret.Secret, error) {
	if path := globalString(c, "secret-file"); path != "" {
		return secret.Load(path)
	}
	if s := os.Getenv("SHOAL_SECRET"); s != "" {
		sec, err := secret.Parse(s)
		if err != nil {
			return secret.Secret{}, fmt.Errorf("SHOAL_SECRET: %w", err)
		}
		return sec, nil
	}
	return secret.Secret{}, nil
}

// dial builds an API client from --addr, --ca-cert and the secret; or,
// when neither an address nor a secret is given, for a running local
// cluster (localCluster).
func dial(c *ucli.Context) (*client.Client, error) {
	addr := globalString(c, "addr")
	var sec secret.Secret
	var err error
	if lc, ok := localCluster(c); ok {
		if sec, err = secret.Load(lc.secretFile); err != nil {
			return nil, err
		}
		addr = lc.url
		if c.App.Metadata[metaLocalNote] != true {
			fmt.Fprintf(c.App.ErrWriter, "shoal: using the local cluster in %s (%s at %s); set SHOAL_ADDR or --addr to use another\n", lc.dir, lc.node, lc.url)
			c.App.Metadata[metaLocalNote] = true
		}
	} else if sec, err = loadSecret(c); err != nil {
		return nil, err
	}
	var roots *x509.CertPool
	if f := globalString(c, "ca-cert"); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", f)
		}
	}
	cl, err := client.NewTLS(addr, sec.APIToken(), roots)
	if err != nil {
		return nil, usageError{err}
	}
	return cl, nil
}

// metaLocalNote in App.Metadata records that the local-cluster note was
// printed.
const metaLocalNote = "local-cluster-noted"

// runningCluster is a local cluster found by localCluster.
type runningCluster struct {
	dir, secretFile, node, url string
}

// localCluster finds the cluster scripts/local-cluster.sh runs in
// $SHOAL_CLUSTER_DIR (default ./.cluster), when the user gave neither an
// address nor a secret (no --addr, SHOAL_ADDR, --secret-file,
// SHOAL_SECRET_FILE or SHOAL_SECRET): the first node, in name order, whose
// agent.json names a running process.
func localCluster(c *ucli.Context) (runningCluster, bool) {
	if globalSet(c, "addr") || globalSet(c, "secret-file") || os.Getenv("SHOAL_SECRET") != "" {
		return runningCluster{}, false
	}
	dir := os.Getenv("SHOAL_CLUSTER_DIR")
	if dir == "" {
		dir = ".cluster"
	}
	sf := filepath.Join(dir, "secret")
	if _, err := os.Stat(sf); err != nil {
		return runningCluster{}, false
	}
	nodes, _ := filepath.Glob(filepath.Join(dir, "node*", "agent.json"))
	sort.Slice(nodes, func(i, j int) bool { return nodeLess(nodes[i], nodes[j]) })
	for _, p := range nodes {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var info struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
			HTTP string `json:"http"`
		}
		if json.Unmarshal(b, &info) != nil || info.PID <= 0 || info.HTTP == "" {
			continue
		}
		if syscall.Kill(info.PID, 0) != nil {
			continue // not running
		}
		return runningCluster{dir: dir, secretFile: sf, node: info.Name, url: info.HTTP}, true
	}
	return runningCluster{}, false
}

// nodeLess orders .../node2/agent.json before .../node10/agent.json.
func nodeLess(a, b string) bool {
	na, nb := filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b))
	if len(na) != len(nb) {
		return len(na) < len(nb)
	}
	return na < nb
}
