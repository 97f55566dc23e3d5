package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
)

// maxDepth bounds the nesting of arrays and maps in a control message.
const maxDepth = 64

// The decoder allocates a slice's or map's elements when it reads the
// header, before the elements: n elements of the Go type, however few
// bytes each takes on the wire (a nil is one byte). So the elements that a
// message's headers claim, each counted at the size of the largest element
// type the target can hold, may come to at most decodeFactor times the
// message's length plus decodeSlack.
const (
	decodeFactor = 8
	decodeSlack  = 64 << 10
)

var errTruncated = errors.New("truncated")

// checkMsgpack walks a msgpack value without decoding it and rejects one
// whose headers claim more elements or bytes than the message holds, or
// that nests deeper than maxDepth. The msgpack library allocates what a
// header claims before reading it, so this check keeps a few hostile bytes
// from asking for gigabytes.
//
// slot and entry are the sizes in memory of the largest slice element and
// map entry the target can hold (elemSizes); with them the check also
// bounds what the decoder allocates for the elements headers claim.
func checkMsgpack(b []byte, slot, entry uintptr) error {
	pos := 0
	claimed := uint64(0) // bytes the headers so far make the decoder allocate
	budget := uint64(decodeFactor*len(b) + decodeSlack)
	stack := []int{1} // values still to read at each open level
	for len(stack) > 0 {
		if stack[len(stack)-1] == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		stack[len(stack)-1]--
		if pos >= len(b) {
			return errTruncated
		}
		c := b[pos]
		pos++
		var skip, elems int
		var size uintptr                   // of each element the header claims
		need := func(n int) (int, error) { // read an n-byte big-endian length
			if pos+n > len(b) {
				return 0, errTruncated
			}
			var v uint64
			switch n {
			case 1:
				v = uint64(b[pos])
			case 2:
				v = uint64(binary.BigEndian.Uint16(b[pos:]))
			case 4:
				v = uint64(binary.BigEndian.Uint32(b[pos:]))
			}
			pos += n
			if v > uint64(len(b)) {
				return 0, fmt.Errorf("a header claims %d, more than the message's %d bytes", v, len(b))
			}
			return int(v), nil
		}
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			elems, size = 2*int(c&0x0f), entry/2
		case c >= 0x90 && c <= 0x9f:
			elems, size = int(c&0x0f), slot
		case c >= 0xa0 && c <= 0xbf:
			skip = int(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			skip, err = need(1)
		case c == 0xc5 || c == 0xda:
			skip, err = need(2)
		case c == 0xc6 || c == 0xdb:
			skip, err = need(4)
		case c == 0xc7:
			skip, err = need(1)
			skip++
		case c == 0xc8:
			skip, err = need(2)
			skip++
		case c == 0xc9:
			skip, err = need(4)
			skip++
		case c == 0xca || c == 0xce || c == 0xd2:
			skip = 4
		case c == 0xcb || c == 0xcf || c == 0xd3:
			skip = 8
		case c == 0xcc || c == 0xd0:
			skip = 1
		case c == 0xcd || c == 0xd1:
			skip = 2
		case c >= 0xd4 && c <= 0xd8:
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			elems, err = need(2)
			size = slot
		case c == 0xdd:
			elems, err = need(4)
			size = slot
		case c == 0xde:
			elems, err = need(2)
			elems, size = 2*elems, entry/2
		case c == 0xdf:
			elems, err = need(4)
			elems, size = 2*elems, entry/2
		default:
			return fmt.Errorf("invalid msgpack byte 0x%02x", c)
		}
		if err != nil {
			return err
		}
		if pos+skip > len(b) {
			return errTruncated
		}
		pos += skip
		if elems > 0 {
			if elems > len(b)-pos {
				return fmt.Errorf("a header claims %d elements in %d bytes", elems, len(b)-pos)
			}
			if len(stack) >= maxDepth {
				return fmt.Errorf("nested deeper than %d", maxDepth)
			}
			claimed += uint64(elems) * uint64(size)
			if claimed > budget {
				return fmt.Errorf("headers claim elements that would take %d bytes to decode, more than %d times the message's %d bytes", claimed, decodeFactor, len(b))
			}
			stack = append(stack, elems)
		}
	}
	if pos != len(b) {
		return fmt.Errorf("%d bytes after the message", len(b)-pos)
	}
	return nil
}

// elemSizes are the sizes of the largest element of any slice or array,
// and of the largest entry of any map, reachable from t (0: none). A
// msgpack map decoded into a struct allocates nothing per entry.
func elemSizes(t reflect.Type) (slot, entry uintptr) {
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t == nil || seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Pointer:
			walk(t.Elem())
		case reflect.Slice, reflect.Array:
			slot = max(slot, t.Elem().Size())
			walk(t.Elem())
		case reflect.Map:
			entry = max(entry, t.Key().Size()+t.Elem().Size())
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				walk(t.Field(i).Type)
			}
		case reflect.Interface:
			// decoded into []any and map[string]any
			slot, entry = max(slot, 16), max(entry, 32)
		}
	}
	walk(t)
	return slot, entry
}
