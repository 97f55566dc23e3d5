package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"shoal.dev/shoal/secret"
)

// secretFDVar names the descriptor an agent re-executed by
// execWithoutSecret reads its secret from.
const secretFDVar = "SHOAL_SECRET_FD"

// checkSecretFileMode refuses a secret file that other users can read.
func checkSecretFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("secret file: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("secret file %s is open to other users (mode %04o): it lets its holder run code on every node; run chmod 600 %s", path, m, path)
	}
	return nil
}

// secretFromFD reads the secret an earlier exec of this agent passed on,
// if any, and forgets the variable.
func secretFromFD() (secret.Secret, bool, error) {
	v := os.Getenv(secretFDVar)
	if v == "" {
		return secret.Secret{}, false, nil
	}
	os.Unsetenv(secretFDVar)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return secret.Secret{}, true, fmt.Errorf("%s=%q: not a descriptor", secretFDVar, v)
	}
	f := os.NewFile(uintptr(fd), "secret")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return secret.Secret{}, true, fmt.Errorf("read the secret passed on: %w", err)
	}
	sec, err := secret.Parse(string(b))
	return sec, true, err
}

// execWithoutSecret replaces this process (same PID) with the same agent
// command minus --secret-file and minus SHOAL_SECRET and SHOAL_SECRET_FILE
// in its environment; the secret travels through a pipe whose descriptor
// the new image reads and closes. Then neither /proc/PID/cmdline nor
// /proc/PID/environ, which a task's process can read, leads to the
// secret. It returns only on failure.
func execWithoutSecret(sec secret.Secret) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to drop the secret from its command line: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.WriteString(w, sec.String()); err != nil {
		w.Close()
		return err
	}
	w.Close()
	// Keep r open across exec: clear its close-on-exec flag.
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, r.Fd(), syscall.F_SETFD, 0); errno != 0 {
		return fmt.Errorf("pass the secret on: %w", errno)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_SECRET=") && !strings.HasPrefix(kv, "SHOAL_SECRET_FILE=") && !strings.HasPrefix(kv, secretFDVar+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, secretFDVar+"="+strconv.Itoa(int(r.Fd())))
	return syscall.Exec(exe, withoutFlag(os.Args, "secret-file"), env)
}

// withoutFlag drops a value flag (-name V, --name V, --name=V) from args.
func withoutFlag(args []string, name string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		bare := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && bare == name {
			i++ // and its value
			continue
		}
		if strings.HasPrefix(a, "-") && strings.HasPrefix(bare, name+"=") {
			continue
		}
		out = append(out, a)
	}
	return out
}
