package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxDepth bounds the nesting of arrays and maps in a control message.
const maxDepth = 64

var errTruncated = errors.New("truncated")

// checkMsgpack walks a msgpack value without decoding it and rejects one
// whose headers claim more elements or bytes than the message holds, or
// that nests deeper than maxDepth. The msgpack library allocates what a
// header claims before reading it, so this check keeps a few hostile bytes
// from asking for gigabytes.
func checkMsgpack(b []byte) error {
	pos := 0
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
			elems = 2 * int(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			elems = int(c & 0x0f)
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
		case c == 0xdd:
			elems, err = need(4)
		case c == 0xde:
			elems, err = need(2)
			elems *= 2
		case c == 0xdf:
			elems, err = need(4)
			elems *= 2
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
			stack = append(stack, elems)
		}
	}
	if pos != len(b) {
		return fmt.Errorf("%d bytes after the message", len(b)-pos)
	}
	return nil
}
