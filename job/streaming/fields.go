package streaming

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// fieldSplit cuts a command's output line into key and value the way
// Hadoop Streaming does with stream.map.output.field.separator and
// stream.num.map.output.key.fields (and their reduce twins): the key is
// the line up to the keyFields-th separator, the value what follows it. A
// line with fewer separators is all key, with an empty value.
type fieldSplit struct {
	sep       []byte
	keyFields int
}

// defaultSplit is Streaming's default: the key before the first tab.
var defaultSplit = fieldSplit{sep: []byte{'\t'}, keyFields: 1}

func (f fieldSplit) split(line []byte) (key, value []byte) {
	at := 0
	for n := 0; ; n++ {
		i := bytes.Index(line[at:], f.sep)
		if i < 0 {
			return line, line[len(line):]
		}
		if n+1 == f.keyFields {
			k := at + i
			return line[:k:k], line[k+len(f.sep):]
		}
		at += i + len(f.sep)
	}
}

// parseFieldSplit reads a separator and a key field count parameter pair;
// empty values take the defaults (tab, 1).
func parseFieldSplit(sep, fields string) (fieldSplit, error) {
	f := defaultSplit
	if sep != "" {
		f.sep = []byte(unescape(sep))
	}
	if fields != "" {
		n, err := strconv.Atoi(strings.TrimSpace(fields))
		if err != nil || n < 1 || n > 1000 {
			return f, fmt.Errorf("key fields %q: want a whole number from 1 to 1000", fields)
		}
		f.keyFields = n
	}
	return f, nil
}

// unescape turns the escapes users type for separators on a command line
// ("\t", "\\t" as a two-character string) into the byte.
func unescape(s string) string {
	switch s {
	case `\t`:
		return "\t"
	case `\n`:
		return "\n"
	case `\\`:
		return `\`
	}
	return s
}

// keySpec is one -kPOS1[,POS2] of KeyFieldBasedPartitioner or
// KeyFieldBasedComparator options: key fields start to end, 1-based; end 0
// means to the end of the key.
type keySpec struct {
	start, end int
}

// errKeyOption is wrapped by parseKeySpecs for what it cannot take.
var errKeyOption = errors.New("unsupported key field option")

// parseKeySpecs parses "-k1,1 -k2,2"-style options (Unix sort's -k, whole
// fields only). Character offsets (-k1.2) and ordering flags (n, r, …) are
// refused, naming the option.
func parseKeySpecs(opts string) ([]keySpec, error) {
	var out []keySpec
	fields := strings.Fields(opts)
	for i := 0; i < len(fields); i++ {
		o := fields[i]
		if o == "-k" && i+1 < len(fields) { // "-k 1,1"
			i++
			o = "-k" + fields[i]
		}
		rest, ok := strings.CutPrefix(o, "-k")
		if !ok {
			return nil, fmt.Errorf("%w %q: Shoal takes -kPOS1[,POS2] (whole fields) only", errKeyOption, o)
		}
		a, b, hasEnd := strings.Cut(rest, ",")
		start, err := fieldNumber(a)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", errKeyOption, o, err)
		}
		ks := keySpec{start: start}
		if hasEnd {
			if ks.end, err = fieldNumber(b); err != nil {
				return nil, fmt.Errorf("%w %q: %w", errKeyOption, o, err)
			}
			if ks.end < ks.start {
				return nil, fmt.Errorf("%w %q: the end field is before the start", errKeyOption, o)
			}
		}
		out = append(out, ks)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %q: no -k option", errKeyOption, opts)
	}
	return out, nil
}

func fieldNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		if strings.ContainsAny(s, ".nrbdfghiMV") {
			return 0, errors.New("character positions and ordering flags (n, r, …) are not supported: Shoal sorts keys bytewise")
		}
		return 0, fmt.Errorf("field %q: want a number from 1 to 1000", s)
	}
	return n, nil
}

// keyFieldPartitioner is Hadoop's KeyFieldBasedPartitioner: it hashes the
// selected fields of the key (split at sep) with Java's String-style
// hash (h = 31*h + byte, over signed bytes) and takes it modulo the
// partitions, so the same fields land in the same partition whatever
// follows them.
type keyFieldPartitioner struct {
	sep   []byte
	specs []keySpec
}

func (p *keyFieldPartitioner) Partition(key []byte, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	var h int32
	for _, ks := range p.specs {
		for _, b := range p.fields(key, ks) {
			h = 31*h + int32(int8(b))
		}
	}
	return int(h&math.MaxInt32) % partitions
}

// fields returns the bytes of key's fields ks.start to ks.end, separators
// between them included; nil when the key has fewer fields.
func (p *keyFieldPartitioner) fields(key []byte, ks keySpec) []byte {
	start, n := 0, 1
	for n < ks.start {
		i := bytes.Index(key[start:], p.sep)
		if i < 0 {
			return nil
		}
		start += i + len(p.sep)
		n++
	}
	if ks.end == 0 {
		return key[start:]
	}
	end := start
	for {
		i := bytes.Index(key[end:], p.sep)
		if i < 0 {
			return key[start:]
		}
		if n == ks.end {
			return key[start : end+i]
		}
		end += i + len(p.sep)
		n++
	}
}

// checkBytewiseComparator accepts KeyFieldBasedComparator options that
// order keys as Shoal's bytewise sort does: -k1,1 -k2,2 … -kN,N (and a
// last -kN to the end of the key), fields in order from the first. Other
// orders (a later field first, numeric or reverse) are refused.
func checkBytewiseComparator(specs []keySpec) error {
	for i, ks := range specs {
		last := i == len(specs)-1
		if ks.start != i+1 || (ks.end != ks.start && !(last && ks.end == 0)) {
			return fmt.Errorf("%w: Shoal sorts keys bytewise, which is -k1,1 -k2,2 … (each field in turn, from the first); these options order keys otherwise", errKeyOption)
		}
	}
	return nil
}
