// Package claim makes "create if absent" hold across a cluster without a
// master. Every path has a primary: the first alive owner of the key
// "path:<path>" on the ring. A writer asks the primary to reserve the path
// before it writes the path's record; the primary checks the replicated
// records and its table of live reservations under one lock and grants at
// most one. The record itself is then written by the primary, under the
// same lock, with the reservation's token, which consumes the reservation.
// A writer that dies leaves a reservation that expires after the lease TTL
// unless renewed.
//
// When the primary of a path changes (the old one died, left, or a node
// joined and took the path over), the new primary does not know what the old
// one granted. It refuses to grant such a path until it has been its primary
// for a whole TTL: by then every reservation the old primary granted has
// either expired or been renewed at the new primary, which adopts a renewal
// or commit it does not know during that window. A node that starts counts
// as a new primary of every path, so a restart forgets nothing that is
// still live.
//
// The decisions are the pure function Decide; Service is the shell that
// holds the table, talks the protocol and writes records.
package claim

import (
	"slices"
	"time"

	"shoal.dev/shoal/ring"
)

// Op is what a writer asks of a path's primary.
type Op uint8

// The operations.
const (
	// OpReserve asks for a new reservation.
	OpReserve Op = iota + 1
	// OpRenew extends a reservation by a TTL.
	OpRenew
	// OpCommit writes the path's record and consumes the reservation.
	OpCommit
	// OpRelease gives a reservation up (the write failed).
	OpRelease
)

var opNames = map[Op]string{OpReserve: "reserve", OpRenew: "renew", OpCommit: "commit", OpRelease: "release"}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return "op?"
}

// Verdict is a primary's answer.
type Verdict uint8

// The verdicts.
const (
	// Granted: the reservation is the asker's until Expires.
	Granted Verdict = iota + 1
	// Renewed: the reservation lives another TTL.
	Renewed
	// Committed: the record was written (or already held this value).
	Committed
	// Released: the reservation is gone.
	Released
	// Exists: the path exists in the records.
	Exists
	// Busy: another writer holds a live reservation of the path.
	Busy
	// Wait: this node became the path's primary less than a TTL ago and
	// may not grant it yet; ask again at RetryAt.
	Wait
	// NotPrimary: this node is not the path's primary in its view of the
	// ring; ask the primary.
	NotPrimary
	// Lost: the token names no live reservation (it expired, or another
	// writer holds the path).
	Lost
)

var verdictNames = map[Verdict]string{
	Granted: "granted", Renewed: "renewed", Committed: "committed", Released: "released",
	Exists: "exists", Busy: "busy", Wait: "wait", NotPrimary: "not-primary", Lost: "lost",
}

func (v Verdict) String() string {
	if s, ok := verdictNames[v]; ok {
		return s
	}
	return "verdict?"
}

// Entry is a live reservation in a primary's table.
type Entry struct {
	Kind    Kind
	Owner   string // the node that asked
	Token   string
	Expires time.Time
}

// Input is everything a decision depends on.
type Input struct {
	Now time.Time
	TTL time.Duration
	Op  Op
	// Kind, Owner and Token are the request's.
	Kind  Kind
	Owner string
	Token string
	// Primary reports whether this node is the path's primary in its view.
	Primary bool
	// SettledAt is when this node has been the path's primary for a whole
	// TTL (see SettledAt); before then it grants nothing it does not know.
	SettledAt time.Time
	// Entry is the table's reservation of the path, or nil.
	Entry *Entry
	// OwnerGone reports that Entry's owner is no longer an alive member:
	// its writer cannot commit, and the entry counts as expired.
	OwnerGone bool
	// Exists is non-nil when the records say the path may not be created
	// (it exists, or a running job writes it); its text is the reason.
	Exists error
	// Written reports, for a commit, that the record already holds exactly
	// the value being committed (a retried commit).
	Written bool
}

// Decision is a verdict and the table's entry for the path afterwards.
type Decision struct {
	Verdict Verdict
	// Entry replaces the table's entry; nil removes it.
	Entry *Entry
	// Holder is the owner of the reservation that made the answer Busy.
	Holder string
	// RetryAt is when a Wait may end.
	RetryAt time.Time
}

// Decide is the rule of the primary: of the writers that ask to create a
// path, at most one holds a live reservation at any time, and none while the
// records say the path exists.
func Decide(in Input) Decision {
	e := in.Entry
	if e != nil && (!in.Now.Before(e.Expires) || in.OwnerGone) {
		e = nil // expired, or its writer died: as if absent, and dropped
	}
	mine := e != nil && e.Token == in.Token
	if in.Op == OpRelease {
		if mine || e == nil {
			return Decision{Verdict: Released}
		}
		return Decision{Verdict: Released, Entry: e}
	}
	if !in.Primary {
		return Decision{Verdict: NotPrimary, Entry: e}
	}
	settling := in.Now.Before(in.SettledAt)
	extended := func() *Entry {
		return &Entry{Kind: in.Kind, Owner: in.Owner, Token: in.Token, Expires: in.Now.Add(in.TTL)}
	}
	switch in.Op {
	case OpReserve:
		switch {
		case mine:
			return Decision{Verdict: Granted, Entry: extended()} // a retried request
		case e != nil:
			return Decision{Verdict: Busy, Entry: e, Holder: e.Owner}
		case in.Exists != nil:
			return Decision{Verdict: Exists}
		case settling:
			return Decision{Verdict: Wait, RetryAt: in.SettledAt}
		}
		return Decision{Verdict: Granted, Entry: extended()}
	case OpRenew:
		switch {
		case mine:
			return Decision{Verdict: Renewed, Entry: extended()}
		case e != nil:
			return Decision{Verdict: Lost, Entry: e}
		case settling && in.Exists == nil:
			// A reservation the previous primary granted: adopt it.
			return Decision{Verdict: Renewed, Entry: extended()}
		}
		return Decision{Verdict: Lost}
	case OpCommit:
		switch {
		case in.Written:
			return Decision{Verdict: Committed, Entry: keepOther(e, mine)}
		case mine && in.Exists != nil:
			return Decision{Verdict: Exists} // a forced write took the path meanwhile
		case mine:
			return Decision{Verdict: Committed}
		case e != nil:
			return Decision{Verdict: Lost, Entry: e}
		case settling && in.Exists == nil:
			return Decision{Verdict: Committed} // adopted, as for a renewal
		}
		return Decision{Verdict: Lost}
	}
	return Decision{Verdict: Lost, Entry: e}
}

func keepOther(e *Entry, mine bool) *Entry {
	if mine {
		return nil
	}
	return e
}

// Key is the ring key whose primary owner serializes creates of path.
func Key(path string) string { return "path:" + path }

// RingChange is a ring and when this node started to use it.
type RingChange struct {
	At   time.Time
	Ring *ring.Ring
}

// SettledAt returns when self will have been the primary of key for a
// whole ttl, given when it started and the rings it has used since, oldest
// first (the last is the current one). A ring in which another member was
// the primary, or in which there was none, restarts the wait at the next
// change. History older than a TTL may be dropped: it cannot move the
// answer past now.
func SettledAt(start time.Time, history []RingChange, self, key string, ttl time.Duration) time.Time {
	since := start
	for i, h := range history {
		if h.Ring.Owner(key) == self {
			continue
		}
		if i+1 == len(history) {
			return time.Time{}.Add(1<<63 - 1) // not the primary now: never
		}
		if next := history[i+1].At; next.After(since) {
			since = next
		}
	}
	return since.Add(ttl)
}

// pruneHistory drops the changes that ended more than ttl before now,
// keeping the current ring.
func pruneHistory(history []RingChange, now time.Time, ttl time.Duration) []RingChange {
	i := 0
	for i+1 < len(history) && !history[i+1].At.After(now.Add(-ttl)) {
		i++
	}
	return slices.Clone(history[i:])
}
