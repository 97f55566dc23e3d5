package cli

import (
	"crypto/x509"
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

// The global flags. Each client command takes them too, so both
// `shoal --addr URL members` and `shoal members --addr URL` work; a flag
// given after the command wins over one given before it, and either wins
// over the environment. Only the app-level copy reads the environment and
// carries the default, so a command-level copy is set only when typed.
var globalFlagEnv = map[string]string{
	"addr":        "SHOAL_ADDR",
	"secret-file": "SHOAL_SECRET_FILE",
	"ca-cert":     "SHOAL_CA_CERT",
}

// appFlags are the app-level (global) flags.
func appFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "addr", Usage: "agent HTTP API address, http://HOST:PORT or https://HOST:PORT", Value: "http://" + peer.DefaultHTTPAddr, EnvVars: []string{globalFlagEnv["addr"]}},
		&ucli.StringFlag{Name: "secret-file", Usage: "file holding the cluster secret (or set SHOAL_SECRET to the secret itself)", EnvVars: []string{globalFlagEnv["secret-file"]}},
		&ucli.StringFlag{Name: "ca-cert", Usage: "PEM file of the CA that signed the agent's TLS certificate (default: the system's roots)", EnvVars: []string{globalFlagEnv["ca-cert"]}},
		&ucli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version"},
	}
}

// clientFlags are the global flags as a client command takes them after its
// name: no default and no environment of their own (see appFlags).
func clientFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "addr", Usage: "agent HTTP API address (default: the global --addr, $SHOAL_ADDR, http://" + peer.DefaultHTTPAddr + ")"},
		&ucli.StringFlag{Name: "secret-file", Usage: "file holding the cluster secret (default: the global --secret-file, $SHOAL_SECRET_FILE; or set SHOAL_SECRET)"},
		&ucli.StringFlag{Name: "ca-cert", Usage: "PEM file of the CA that signed the agent's TLS certificate (default: the global --ca-cert, $SHOAL_CA_CERT, the system's roots)"},
	}
}

// globalString is a global flag's value as the user meant it: the nearest
// copy typed on the command line (the command's own before the app's), else
// the environment, else the default.
func globalString(c *ucli.Context, name string) string {
	lineage := c.Lineage()
	for _, l := range lineage {
		if l.Command == nil || !hasFlag(l.Command.Flags, name) || l.Command.Name == "" {
			continue
		}
		if v := l.String(name); v != "" {
			return v
		}
	}
	root := lineage[len(lineage)-1]
	return root.String(name)
}

// globalSet reports whether a global flag was typed anywhere or is in the
// environment.
func globalSet(c *ucli.Context, name string) bool {
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && hasFlag(l.Command.Flags, name) && l.String(name) != "" {
			return true
		}
	}
	root := c.Lineage()[len(c.Lineage())-1]
	return root.IsSet(name)
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

// client builds an API client from --addr, --ca-cert and the secret.
func client(c *ucli.Context) (*peer.Client, error) {
	sec, err := loadSecret(c)
	if err != nil {
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
	cl, err := peer.NewClientTLS(globalString(c, "addr"), sec.APIToken(), roots)
	if err != nil {
		return nil, usageError{err}
	}
	return cl, nil
}
