package builtin

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"slices"
)

// Text generator parameters.
const (
	vocabularySize = 50000
	zipfS          = 1.1 // Zipf exponent: close to English word frequencies
	minLineWords   = 6
	maxLineWords   = 16
	genBufferSize  = 64 << 10
	pcgStream      = 0x73686f616c746578 // "shoaltex": fixes the PCG stream
)

// functionWords are the most frequent English words, in frequency order;
// they take the top ranks of the vocabulary so a word count of generated
// text reads like one of English.
var functionWords = []string{
	"the", "of", "and", "to", "a", "in", "is", "that", "it", "was",
	"for", "on", "with", "as", "he", "be", "at", "by", "i", "this",
	"had", "not", "are", "but", "from", "or", "have", "an", "they", "which",
	"you", "were", "her", "all", "she", "there", "would", "their", "we", "him",
}

// Syllable parts of pseudo-words. Empty strings make a part optional.
var (
	onsets = []string{
		"", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z",
		"bl", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gr", "pl", "pr", "sc", "sh", "sl", "sp", "st", "th", "tr", "wh",
	}
	nuclei = []string{"a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "ie", "oa", "oo", "ou", "y"}
	codas  = []string{"", "", "", "", "b", "ck", "d", "ft", "g", "l", "ll", "m", "n", "nd", "ng", "nt", "p", "r", "rd", "s", "ss", "st", "t", "th", "x"}
)

// vocabulary is the generator's words by rank: word 0 is the most
// frequent. The words are stored back to back in text, followed by
// wordPad bytes of padding so that a word can be copied as a fixed-size
// block; word k is text[words[k].off:][:words[k].len].
type vocabulary struct {
	text  []byte
	words []wordRef
}

type wordRef struct {
	off, len uint32
}

// wordPad is the size of the block copyWord moves; longer words take the
// slow path.
const wordPad = 16

// newVocabulary builds the vocabulary for rng: English function words,
// then distinct pseudo-words of one to four syllables, shortest first (in
// English, frequent words are short).
func newVocabulary(rng *rand.Rand) *vocabulary {
	seen := make(map[string]bool, vocabularySize)
	for _, w := range functionWords {
		seen[w] = true
	}
	pseudo := make([]string, 0, vocabularySize)
	var b []byte
	for len(functionWords)+len(pseudo) < vocabularySize {
		b = b[:0]
		syllables := 1
		switch r := rng.IntN(100); {
		case r >= 92:
			syllables = 4
		case r >= 70:
			syllables = 3
		case r >= 30:
			syllables = 2
		}
		for range syllables {
			b = append(b, onsets[rng.IntN(len(onsets))]...)
			b = append(b, nuclei[rng.IntN(len(nuclei))]...)
			b = append(b, codas[rng.IntN(len(codas))]...)
		}
		if w := string(b); !seen[w] {
			seen[w] = true
			pseudo = append(pseudo, w)
		}
	}
	slices.SortStableFunc(pseudo, func(a, b string) int { return len(a) - len(b) })

	v := &vocabulary{words: make([]wordRef, 0, vocabularySize)}
	for _, w := range slices.Concat(functionWords, pseudo) {
		v.words = append(v.words, wordRef{off: uint32(len(v.text)), len: uint32(len(w))})
		v.text = append(v.text, w...)
	}
	v.text = append(v.text, make([]byte, wordPad)...)
	return v
}

// zipfTable draws ranks in [0, n) with P(k) proportional to (1+k)^-s: the
// distribution of math/rand/v2's Zipf with v = 1 and imax = n-1. It uses
// Vose's alias method, one random uint64 and one table entry per draw:
// rand.Zipf spends an Exp and a Log on each draw, several times the cost
// of everything else the generator does per word.
type zipfTable []aliasEntry

type aliasEntry struct {
	prob  uint32 // keep the column with probability prob / 2^32 ...
	alias uint32 // ... else take this rank (= the column when prob is 1)
}

func newZipfTable(n int, s float64) zipfTable {
	p := make([]float64, n)
	var sum float64
	for k := range p {
		p[k] = math.Pow(1+float64(k), -s)
		sum += p[k]
	}
	t := make(zipfTable, n)
	var small, large []int
	for k := range p {
		p[k] *= float64(n) / sum
		if p[k] < 1 {
			small = append(small, k)
		} else {
			large = append(large, k)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l, g := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t[l] = aliasEntry{prob: uint32(p[l] * (1 << 32)), alias: uint32(g)}
		if p[g] += p[l] - 1; p[g] < 1 {
			large = large[:len(large)-1]
			small = append(small, g)
		}
	}
	// What is left has probability 1, up to rounding.
	for _, k := range slices.Concat(small, large) {
		t[k] = aliasEntry{prob: math.MaxUint32, alias: uint32(k)}
	}
	return t
}

// draw returns a rank for the random bits u.
func (t zipfTable) draw(u uint64) int {
	col := (u >> 32) * uint64(len(t)) >> 32 // uniform in [0, len(t)), bias < 2^-16
	e := t[col]
	if uint32(u) < e.prob {
		return int(col)
	}
	return int(e.alias)
}

// GenerateText writes exactly size bytes of English-like text to w: lines
// of 6 to 16 words separated by single spaces, each line ending in "\n".
// The words come from a vocabulary of 50,000 — the 40 most frequent English
// words, then pseudo-words built from syllables, shortest first — drawn by
// rank k with probability proportional to (1+k)^-1.1 (math/rand/v2's Zipf
// with s = 1.1, v = 1), so word counts have the long tail of real text.
// The last line is cut to fit and still ends in "\n" (its last word may be
// cut short or run into the next); size 0 writes nothing. The output is a
// function of (size, seed) alone, and the output for a smaller size is a
// prefix of the one for a larger size, but for the last line. It writes
// through a 64 KiB buffer and does not allocate per word.
func GenerateText(w io.Writer, size int64, seed uint64) error {
	if size < 0 {
		return errors.New("generate text: negative size")
	}
	if size == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, pcgStream))
	vocab := newVocabulary(rng)
	zipf := newZipfTable(len(vocab.words), zipfS)
	text, words := vocab.text, vocab.words

	// A line is at most maxLineWords words of at most 4 syllables of at
	// most 6 bytes, plus separators: lineRoom bytes with copy padding.
	const lineRoom = maxLineWords*(4*6+1+wordPad) + 1
	buf := make([]byte, genBufferSize+lineRoom)
	n := 0            // bytes in buf
	var written int64 // bytes of earlier bufs written
	for {
		lineStart := n
		for i := minLineWords + rng.IntN(maxLineWords-minLineWords+1); ; {
			wr := words[zipf.draw(rng.Uint64())]
			if wr.len <= wordPad {
				*(*[wordPad]byte)(buf[n:]) = *(*[wordPad]byte)(text[wr.off:])
			} else {
				copy(buf[n:], text[wr.off:wr.off+wr.len])
			}
			n += int(wr.len)
			if i--; i == 0 {
				break
			}
			buf[n] = ' '
			n++
		}
		buf[n] = '\n'
		n++

		if left := size - written; int64(n) >= left {
			// The last line: cut it to end exactly at size, in "\n".
			if budget := int(left) - lineStart; n-lineStart > budget {
				line := buf[lineStart:n]
				k := budget - 1 // bytes of the cut line before its "\n"
				if k > 0 && line[k-1] == ' ' {
					line[k-1] = line[k] // no trailing space: pull in a letter
				}
				line[k] = '\n'
				n = lineStart + budget
			}
			_, err := w.Write(buf[:n])
			return err
		}
		if n >= genBufferSize {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			written += int64(n)
			n = 0
		}
	}
}
