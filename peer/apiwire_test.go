package peer

import (
	"encoding/json"
	"reflect"
	"testing"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/tasklog"
)

// fill sets every field v holds (through structs, pointers, slices,
// maps and arrays) to a value that is not zero, each from a running
// counter, so that a conversion dropping or mixing up a field shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)) + string(rune('a'+*n/26%26)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(uint64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	}
}

func filled[T any](t *testing.T) T {
	var x T
	n := 0
	fill(reflect.ValueOf(&x).Elem(), &n)
	return x
}

// sameJSON fails unless a and b encode to the same JSON document.
func sameJSON(t *testing.T, what string, a, b any) {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var ma, mb any
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	if !reflect.DeepEqual(ma, mb) {
		t.Errorf("%s: the record encodes as\n%s\nbut the API answers\n%s", what, ja, jb)
	}
}

// TestAPIWireTypesLoseNothing: the API answers with package client's
// wire types, converted from the engine's records; every field a record
// shows in JSON comes through under the same name and value, so the
// client's types are the whole of the API's answers.
func TestAPIWireTypesLoseNothing(t *testing.T) {
	st := filled[scheduler.Status](t)
	sameJSON(t, "job status", st, st.Wire())
	sameJSON(t, "job list", []scheduler.Status{st}, scheduler.WireList([]scheduler.Status{st}))
	f := filled[blockstore.FileInfo](t)
	sameJSON(t, "file", f, wireFile(f))
	fs := filled[[]blockstore.FileInfo](t)
	sameJSON(t, "glob", fs, wireFiles(fs))
	es := filled[[]blockstore.Entry](t)
	sameJSON(t, "list", es, wireEntries(es))
	es[0].File = nil
	sameJSON(t, "list of a directory", es, wireEntries(es))
	ls := filled[[]blockstore.BlockLocation](t)
	sameJSON(t, "block locations", ls, wireLocations(ls))
	a := filled[blockstore.BlockAck](t)
	sameJSON(t, "block ack", a, wireAck(a))
	io := filled[tasklog.IO](t)
	sameJSON(t, "attempt IO", io, wireIO(&io))
	cs := filled[[]blockstore.Conflict](t)
	sameJSON(t, "conflicts", cs, wireConflicts(cs))

	// A commit the client encodes decodes into the file system's request.
	want := filled[blockstore.CommitRequest](t)
	b, _ := json.Marshal(want)
	var wreq client.CommitRequest
	if err := json.Unmarshal(b, &wreq); err != nil {
		t.Fatal(err)
	}
	got, err := commitRequest(wreq)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("commit request %s decodes to %+v, %v; want %+v", b, got, err, want)
	}
	wreq.Blocks[1].ID = "not hex"
	if _, err := commitRequest(wreq); err == nil {
		t.Error("a commit naming a bad block ID was taken")
	}
}
