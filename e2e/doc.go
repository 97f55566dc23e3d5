// Package e2e holds process-level tests: they build the shoal binary, run
// scripts/local-cluster.sh and the CLI as a user would, on 127.0.0.1 only.
package e2e
