package job

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Param declares a parameter of a Spec.
type Param struct {
	// Name is the parameter's name: an ASCII letter, then letters, digits,
	// '_' or '-'.
	Name string
	// Default is the value used when the parameter is not given.
	Default string
	// Usage is a one-line description for help output.
	Usage string
	// Required parameters must be given (an empty value counts as given);
	// they have no Default.
	Required bool
}

// Spec is a named job: the parameters it takes and how to build it.
type Spec struct {
	// Name is the job's name, as users submit it: an ASCII letter, then
	// letters, digits, '_' or '-'.
	Name string
	// Usage is a one-line description for help output.
	Usage string
	// Params are the parameters the job takes, in help order.
	Params []Param
	// Build validates params (already filled with defaults: every declared
	// parameter is present; unknown names were rejected before Build is
	// called) and returns the job. Its errors are user-facing and name the
	// parameter, without the job's name, which Resolve adds: Build returns
	// "param pattern: bad regular expression ..." and the user sees
	// "grep: param pattern: bad regular expression ...". Build may be
	// called concurrently and more than once.
	Build func(params map[string]string) (*Job, error)
	// RunsCommands marks a job that runs code its submitter chooses (a
	// command line, a script): Hadoop Streaming, or any job that execs.
	// A cluster without a secret refuses such jobs, whatever their name.
	RunsCommands bool
}

// FillParams checks params against s and returns a new map with every
// declared parameter: the given value, or the default. It rejects unknown
// names and missing required ones with an error wrapping ErrBadParam. The
// result is what Build receives and what tasks see as TaskInfo.Params.
func (s Spec) FillParams(params map[string]string) (map[string]string, error) {
	var unknown []string
	for name := range params {
		if !slices.ContainsFunc(s.Params, func(p Param) bool { return p.Name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		takes := "it takes no parameters"
		if len(s.Params) > 0 {
			names := make([]string, len(s.Params))
			for i, p := range s.Params {
				names[i] = p.Name
			}
			takes = "it takes: " + strings.Join(names, ", ")
		}
		what := "parameter " + unknown[0]
		if len(unknown) > 1 {
			what = "parameters " + strings.Join(unknown, ", ")
		}
		return nil, &paramError{msg: fmt.Sprintf("unknown %s for %s; %s", what, s.Name, takes)}
	}
	filled := make(map[string]string, len(s.Params))
	var missing []string
	for _, p := range s.Params {
		v, ok := params[p.Name]
		switch {
		case ok:
			filled[p.Name] = v
		case p.Required:
			missing = append(missing, p.Name)
		default:
			filled[p.Name] = p.Default
		}
	}
	if len(missing) > 0 {
		what := "parameter " + missing[0]
		if len(missing) > 1 {
			what = "parameters " + strings.Join(missing, ", ")
		}
		return nil, &paramError{msg: fmt.Sprintf("missing required %s for %s", what, s.Name)}
	}
	return filled, nil
}

// validate checks the spec's names and shape.
func (s Spec) validate() error {
	if !validName(s.Name) {
		return fmt.Errorf("invalid job name %q: want an ASCII letter, then letters, digits, '_' or '-'", s.Name)
	}
	if s.Build == nil {
		return fmt.Errorf("job %s has no Build", s.Name)
	}
	for i, p := range s.Params {
		if !validName(p.Name) {
			return fmt.Errorf("job %s: invalid parameter name %q", s.Name, p.Name)
		}
		if slices.ContainsFunc(s.Params[:i], func(q Param) bool { return q.Name == p.Name }) {
			return fmt.Errorf("job %s: duplicate parameter %s", s.Name, p.Name)
		}
		if p.Required && p.Default != "" {
			return fmt.Errorf("job %s: required parameter %s has a default", s.Name, p.Name)
		}
	}
	return nil
}

// validName reports whether s is an ASCII letter followed by at most 63
// letters, digits, '_' or '-'.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

var (
	// ErrUnknownJob is returned (wrapped) by Registry.Resolve for a name
	// no Spec is registered under; the message lists the known names.
	ErrUnknownJob = errors.New("unknown job")
	// ErrBadParam is matched (errors.Is) by every parameter error of
	// Registry.Resolve and Spec.FillParams: an unknown or missing
	// parameter, or an error from Build.
	ErrBadParam = errors.New("bad parameter")
	// ErrDuplicateJob is returned (wrapped) by Registry.Register for a name
	// already registered.
	ErrDuplicateJob = errors.New("job already registered")
)

// paramError is a user-facing parameter error: its message is msg alone,
// and it matches ErrBadParam and cause.
type paramError struct {
	msg   string
	cause error
}

func (e *paramError) Error() string { return e.msg }

func (e *paramError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrBadParam}
	}
	return []error{ErrBadParam, e.cause}
}

// Registry holds named job Specs. It is safe for concurrent use. Each node
// (or test) has its own: there is no package-level registry.
type Registry struct {
	mu    sync.RWMutex
	specs map[string]Spec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{specs: make(map[string]Spec)}
}

// Register adds s. It rejects an invalid spec (a bad job or parameter name,
// no Build, a duplicate parameter, a required parameter with a default) and
// a name already registered (ErrDuplicateJob).
func (r *Registry) Register(s Spec) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("register job: %w", err)
	}
	s.Params = slices.Clone(s.Params)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.specs[s.Name]; ok {
		return fmt.Errorf("register job %s: %w", s.Name, ErrDuplicateJob)
	}
	r.specs[s.Name] = s
	return nil
}

// Lookup returns the spec registered under name.
func (r *Registry) Lookup(name string) (Spec, bool) {
	r.mu.RLock()
	s, ok := r.specs[name]
	r.mu.RUnlock()
	s.Params = slices.Clone(s.Params)
	return s, ok
}

// Specs returns every registered spec, sorted by name.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	specs := make([]Spec, 0, len(r.specs))
	for _, s := range r.specs {
		s.Params = slices.Clone(s.Params)
		specs = append(specs, s)
	}
	r.mu.RUnlock()
	slices.SortFunc(specs, func(a, b Spec) int { return strings.Compare(a.Name, b.Name) })
	return specs
}

// Resolve builds the job registered under name from params: it rejects
// unknown parameters ("unknown parameter foo for wordcount; it takes: ..."),
// fills defaults, checks required ones (Spec.FillParams), calls Build
// (recovering a panic, see CallSafely) and validates the result. An unknown name gives an error wrapping
// ErrUnknownJob whose message lists the known names; parameter errors and
// Build's errors, prefixed with the job's name, match ErrBadParam. params is
// not modified.
func (r *Registry) Resolve(name string, params map[string]string) (*Job, error) {
	j, _, _, err := r.resolve(name, params)
	return j, err
}

// resolve is Resolve, also returning the spec and the filled parameters.
func (r *Registry) resolve(name string, params map[string]string) (*Job, Spec, map[string]string, error) {
	s, ok := r.Lookup(name)
	if !ok {
		r.mu.RLock()
		known := make([]string, 0, len(r.specs))
		for n := range r.specs {
			known = append(known, n)
		}
		r.mu.RUnlock()
		slices.Sort(known)
		list := "none registered"
		if len(known) > 0 {
			list = "known jobs: " + strings.Join(known, ", ")
		}
		return nil, s, nil, fmt.Errorf("%w %q (%s)", ErrUnknownJob, name, list)
	}
	filled, err := s.FillParams(params)
	if err != nil {
		return nil, s, nil, err
	}
	var j *Job
	err = CallSafely(func() error {
		var err error
		j, err = s.Build(filled)
		return err
	})
	if perr := (*PanicError)(nil); errors.As(err, &perr) {
		return nil, s, nil, fmt.Errorf("%s: build: %w", name, err)
	}
	if err != nil {
		return nil, s, nil, &paramError{msg: name + ": " + err.Error(), cause: err}
	}
	if err := j.Validate(); err != nil {
		return nil, s, nil, fmt.Errorf("%s: build: %w", name, err)
	}
	return j, s, filled, nil
}

// ResolvePrepared resolves the job registered under name as Resolve does
// and, if it has a Prepare, runs it once (recovering a panic) with s and
// j.NumReducers(reducers) — reducers as the user requested them, < 1 for
// the job's default, as RunSequential takes it — then merges the
// parameters Prepare returns into the filled ones and resolves the job
// again with them. It returns the final job and the final, filled
// parameters (a new map, the caller's): what every task is built from and
// sees as TaskInfo.Params. A job without Prepare is resolved once; s is not
// used.
//
// A runner calls it once per job, at submission; tasks are then built with
// Resolve on the returned parameters, which does not run Prepare again.
// Errors are Resolve's, or Prepare's error prefixed with the job's name
// ("terasort: prepare: ..."); Prepare returning a name the Spec does not
// declare is an error, as is a rebuilt job with a different reducer count.
func (r *Registry) ResolvePrepared(ctx context.Context, name string, params map[string]string, s Sampler, reducers int) (*Job, map[string]string, error) {
	j, spec, filled, err := r.resolve(name, params)
	if err != nil {
		return nil, nil, err
	}
	if j.Prepare == nil {
		return j, maps.Clone(filled), nil // the caller's; Build may keep filled
	}
	n := j.NumReducers(reducers)
	var extra map[string]string
	err = CallSafely(func() (err error) {
		extra, err = j.Prepare(ctx, s, n)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: prepare: %w", name, err)
	}
	merged := maps.Clone(filled) // Build may keep filled
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if !slices.ContainsFunc(spec.Params, func(p Param) bool { return p.Name == k }) {
			return nil, nil, fmt.Errorf("%s: prepare returned parameter %s, which the job does not declare", name, k)
		}
		merged[k] = extra[k]
	}
	j2, _, merged, err := r.resolve(name, merged)
	if err != nil {
		return nil, nil, fmt.Errorf("rebuild after prepare: %w", err)
	}
	if n2 := j2.NumReducers(reducers); n2 != n {
		return nil, nil, fmt.Errorf("%s: prepared for %d reducers, but the rebuilt job has %d", name, n, n2)
	}
	return j2, maps.Clone(merged), nil
}
