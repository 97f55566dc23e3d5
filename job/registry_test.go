package job

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

// echoJob is a spec whose Build records the params it got.
func echoSpec(name string, got *map[string]string, params ...Param) Spec {
	return Spec{
		Name:   name,
		Usage:  "test job",
		Params: params,
		Build: func(p map[string]string) (*Job, error) {
			if got != nil {
				*got = p
			}
			return identityJob(), nil
		},
	}
}

// identityJob maps (k, v) to (v, "") and reduces each key to itself.
func identityJob() *Job {
	return &Job{
		NewMapper: func(TaskInfo) (Mapper, error) {
			return MapperFunc(func(_, v []byte, out Emitter) error { return out.Emit(v, nil) }), nil
		},
		NewReducer: func(TaskInfo) (Reducer, error) {
			return ReducerFunc(func(k []byte, _ Values, out Emitter) error { return out.Emit(k, nil) }), nil
		},
	}
}

func TestRegisterRejects(t *testing.T) {
	r := NewRegistry()
	if err := r.Register(echoSpec("wordcount", nil)); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(echoSpec("wordcount", nil)); !errors.Is(err, ErrDuplicateJob) {
		t.Errorf("duplicate: got %v, want ErrDuplicateJob", err)
	}
	bad := []Spec{
		echoSpec("", nil),
		echoSpec("1abc", nil),
		echoSpec("has space", nil),
		echoSpec("slash/y", nil),
		echoSpec(strings.Repeat("a", 65), nil),
		{Name: "nobuild"},
		echoSpec("badparam", nil, Param{Name: "a=b"}),
		echoSpec("emptyparam", nil, Param{Name: ""}),
		echoSpec("dupparam", nil, Param{Name: "x"}, Param{Name: "x"}),
		echoSpec("reqdefault", nil, Param{Name: "x", Required: true, Default: "1"}),
	}
	for _, s := range bad {
		if err := r.Register(s); err == nil {
			t.Errorf("Register(%q) accepted an invalid spec", s.Name)
		}
	}
	for _, name := range []string{"a", "Tera-Sort_2", strings.Repeat("b", 64)} {
		if err := r.Register(echoSpec(name, nil, Param{Name: "p-1_x"})); err != nil {
			t.Errorf("Register(%q): %v", name, err)
		}
	}
}

func TestLookupAndSpecs(t *testing.T) {
	r := NewRegistry()
	for _, name := range []string{"sum", "grep", "distinct"} {
		if err := r.Register(echoSpec(name, nil, Param{Name: "x"})); err != nil {
			t.Fatal(err)
		}
	}
	s, ok := r.Lookup("grep")
	if !ok || s.Name != "grep" {
		t.Fatalf("Lookup(grep) = %v, %v", s.Name, ok)
	}
	s.Params[0].Name = "changed" // must not reach the registry
	if s, _ := r.Lookup("grep"); s.Params[0].Name != "x" {
		t.Error("Lookup returned the registry's own Params slice")
	}
	if _, ok := r.Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
	var names []string
	for _, s := range r.Specs() {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "distinct,grep,sum" {
		t.Errorf("Specs() names = %s, want sorted", got)
	}
}

func TestResolve(t *testing.T) {
	r := NewRegistry()
	var got map[string]string
	must(t, r.Register(echoSpec("grep", &got,
		Param{Name: "pattern", Required: true},
		Param{Name: "group", Default: "0"},
		Param{Name: "flags"})))
	must(t, r.Register(echoSpec("wordcount", nil)))

	// Defaults filled, the caller's map untouched.
	in := map[string]string{"pattern": "a+"}
	j, err := r.Resolve("grep", in)
	if err != nil || j == nil {
		t.Fatalf("Resolve: %v", err)
	}
	if want := map[string]string{"pattern": "a+", "group": "0", "flags": ""}; !maps.Equal(got, want) {
		t.Errorf("Build got %v, want %v", got, want)
	}
	if len(in) != 1 {
		t.Errorf("Resolve modified its params: %v", in)
	}
	// Given values win over defaults; an empty value counts as given.
	if _, err := r.Resolve("grep", map[string]string{"pattern": "", "group": "2"}); err != nil {
		t.Fatal(err)
	}
	if got["group"] != "2" || got["pattern"] != "" {
		t.Errorf("Build got %v", got)
	}

	tests := []struct {
		name   string
		params map[string]string
		is     error
		msg    string
	}{
		{"nope", nil, ErrUnknownJob, `unknown job "nope" (known jobs: grep, wordcount)`},
		{"wordcount", map[string]string{"foo": "1"}, ErrBadParam, "unknown parameter foo for wordcount; it takes no parameters"},
		{"grep", map[string]string{"pattern": "x", "foo": "1"}, ErrBadParam, "unknown parameter foo for grep; it takes: pattern, group, flags"},
		{"grep", map[string]string{"pattern": "x", "foo": "1", "bar": "2"}, ErrBadParam, "unknown parameters bar, foo for grep; it takes: pattern, group, flags"},
		{"grep", nil, ErrBadParam, "missing required parameter pattern for grep"},
	}
	for _, tt := range tests {
		_, err := r.Resolve(tt.name, tt.params)
		if !errors.Is(err, tt.is) || err.Error() != tt.msg {
			t.Errorf("Resolve(%s, %v) = %q, want %q matching %v", tt.name, tt.params, err, tt.msg, tt.is)
		}
	}
	if _, err := NewRegistry().Resolve("x", nil); err == nil || !strings.Contains(err.Error(), "none registered") {
		t.Errorf("empty registry: %v", err)
	}
}

func TestResolveBuildErrors(t *testing.T) {
	r := NewRegistry()
	cause := errors.New("param pattern: bad regular expression: missing )")
	must(t, r.Register(Spec{Name: "grep", Build: func(map[string]string) (*Job, error) { return nil, cause }}))
	must(t, r.Register(Spec{Name: "panics", Build: func(map[string]string) (*Job, error) { panic("oops") }}))
	must(t, r.Register(Spec{Name: "nomapper", Build: func(map[string]string) (*Job, error) { return &Job{}, nil }}))
	must(t, r.Register(Spec{Name: "nil", Build: func(map[string]string) (*Job, error) { return nil, nil }}))

	_, err := r.Resolve("grep", nil)
	if !errors.Is(err, ErrBadParam) || !errors.Is(err, cause) ||
		err.Error() != "grep: param pattern: bad regular expression: missing )" {
		t.Errorf("build error: %v", err)
	}
	_, err = r.Resolve("panics", nil)
	var pe *PanicError
	if !errors.As(err, &pe) || errors.Is(err, ErrBadParam) || err.Error() != "panics: build: panic: oops" {
		t.Errorf("build panic: %v", err)
	}
	for _, name := range []string{"nomapper", "nil"} {
		if _, err := r.Resolve(name, nil); err == nil || !strings.HasPrefix(err.Error(), name+": build: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestJobValidate(t *testing.T) {
	m := func(TaskInfo) (Mapper, error) { return nil, nil }
	red := func(TaskInfo) (Reducer, error) { return nil, nil }
	bad := map[string]*Job{
		"nil":               nil,
		"no mapper":         {NewReducer: red},
		"no reducer":        {NewMapper: m},
		"maponly reducer":   {NewMapper: m, NewReducer: red, MapOnly: true},
		"maponly combiner":  {NewMapper: m, NewCombiner: red, MapOnly: true},
		"negative reducers": {NewMapper: m, NewReducer: red, DefaultReducers: -1},
		"bad input":         {NewMapper: m, NewReducer: red, Input: 5},
	}
	for name, j := range bad {
		if err := j.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	for name, j := range map[string]*Job{
		"reduce":  {NewMapper: m, NewReducer: red, NewCombiner: red, Input: KeyValueInput},
		"maponly": {NewMapper: m, MapOnly: true},
	} {
		if err := j.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNumReducers(t *testing.T) {
	j := &Job{}
	if n := j.NumReducers(0); n != 1 {
		t.Errorf("no default: %d", n)
	}
	j.DefaultReducers = 4
	if n := j.NumReducers(0); n != 4 {
		t.Errorf("default: %d", n)
	}
	if n := j.NumReducers(7); n != 7 {
		t.Errorf("requested: %d", n)
	}
	j.MapOnly = true
	if n := j.NumReducers(7); n != 0 {
		t.Errorf("map-only: %d", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
