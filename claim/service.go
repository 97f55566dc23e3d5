package claim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/ring"
)

// Defaults.
const (
	// DefaultTTL is a reservation's lease: a writer renews it every third
	// of it, and a new primary waits it out before granting paths it did
	// not grant itself.
	DefaultTTL = 10 * time.Second
	// askTimeout bounds one reserve request, which may wait for the
	// primary to pull the path's records from every member.
	askTimeout = 10 * time.Second
	// releaseTimeout bounds the best-effort release of a failed write.
	releaseTimeout = 2 * time.Second
)

// ErrExists is what a refused reservation or commit matches with
// errors.Is: the path exists, or another writer is creating it.
var ErrExists = errors.New("exists")

// ErrLost is what a commit matches when the reservation ran out (the
// writer could not renew it in time) or was taken over.
var ErrLost = errors.New("reservation lost")

// Refused says why a path may not be created. It matches ErrExists.
type Refused struct {
	Path string
	// Busy: another writer holds a live reservation, on node Holder.
	Busy   bool
	Holder string
	// Reason is the primary's words for an existing path.
	Reason string
}

func (e *Refused) Error() string {
	if e.Busy {
		return fmt.Sprintf("%s is being written (reserved by %s)", e.Path, e.Holder)
	}
	return e.Reason
}

// Is makes a Refused match ErrExists.
func (e *Refused) Is(target error) bool { return target == ErrExists }

// Records is the part of the replicated store a primary writes through.
// *gossip.Store implements it.
type Records interface {
	Get(key string) (gossip.Record, bool)
	Put(key string, value []byte) (gossip.Record, error)
	Merge(recs []gossip.Record) (int, error)
}

// Config wires a Service. Self, Ring, Dialer, Records and Check are
// required.
type Config struct {
	// Self is this node's name.
	Self string
	// Ring returns the current ring of alive members.
	Ring func() *ring.Ring
	// Dialer reaches other members.
	Dialer mesh.Dialer
	// Records holds the records commits write.
	Records Records
	// Check returns a non-nil error, whose text is the reason, when the
	// records say path may not be created as kind. It is called with the
	// service's lock held, so it must not block on the network; calls never
	// overlap.
	Check func(kind Kind, path string) error
	// Sync, if set, brings this node's records of path up to date before a
	// decision that depends on them (a new reservation, or one this node
	// does not know). It is called without the lock, possibly concurrently,
	// and must return when ctx ends.
	Sync func(ctx context.Context, kind Kind, path string)
	// TTL is a reservation's lease. Default DefaultTTL; every member of a
	// cluster must use the same.
	TTL time.Duration
	// ReserveTimeout bounds how long Reserve keeps asking while the primary
	// cannot answer yet (it settles, or views of the ring differ). Default
	// TTL + 20s.
	ReserveTimeout time.Duration
	// Now is the clock; default time.Now. Leases are measured with it.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Self == "" || c.Ring == nil || c.Dialer == nil || c.Records == nil || c.Check == nil {
		return errors.New("claim: incomplete config")
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.ReserveTimeout <= 0 {
		c.ReserveTimeout = c.TTL + 20*time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Service is one node's part: the primary's table for the paths this node
// is primary of, and the writer's side of the protocol.
type Service struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // the one lock: table, history, checks and commits
	start   time.Time
	history []RingChange
	table   map[string]*Entry

	// after is the renewal loop's timer; tests replace it to drive the
	// loop with their clock.
	after func(time.Duration) <-chan time.Time
	// renewed, if set, is told each lease a renewal extends; tests wait on
	// it.
	renewed func(lapse time.Time)
}

// New returns a service. Register its Handle for Protocol, and call
// RingChanged whenever the ring changes.
func New(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	now := cfg.Now()
	return &Service{
		cfg:     cfg,
		log:     cfg.Logger,
		start:   now,
		history: []RingChange{{At: now, Ring: cfg.Ring()}},
		table:   map[string]*Entry{},
		after:   time.After,
	}, nil
}

// TTL is the reservation lease.
func (s *Service) TTL() time.Duration { return s.cfg.TTL }

// RingChanged notes that the ring changed now. Paths this node becomes the
// primary of are granted only a TTL later.
func (s *Service) RingChanged() {
	s.mu.Lock()
	s.noteRingLocked(s.cfg.Now())
	s.mu.Unlock()
}

func (s *Service) noteRingLocked(now time.Time) {
	cur := s.cfg.Ring()
	if s.history[len(s.history)-1].Ring != cur {
		s.history = append(s.history, RingChange{At: now, Ring: cur})
	}
	s.history = pruneHistory(s.history, now, s.cfg.TTL)
}

// Handle serves one request of Protocol from member from.
func (s *Service) Handle(from mesh.NodeName, st mesh.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(askTimeout))
	var req request
	if err := mesh.ReadMsg(st, &req, maxRequest); err != nil {
		s.log.Warn("bad create request", "from", from, "err", err)
		st.Reset()
		return
	}
	if err := req.validate(); err != nil {
		s.log.Warn("bad create request", "from", from, "err", err)
		st.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	if err := mesh.WriteMsg(st, s.serve(ctx, from, req)); err != nil {
		st.Reset()
	}
}

// serve decides one request and applies the decision.
func (s *Service) serve(ctx context.Context, from string, req request) answer {
	began := s.cfg.Now()
	if s.cfg.Sync != nil && req.Op != OpRelease && (req.Op == OpReserve || !s.knows(req.Path, req.Token)) {
		s.cfg.Sync(ctx, req.Kind, req.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.noteRingLocked(now)
	for p, e := range s.table {
		if !now.Before(e.Expires) {
			delete(s.table, p)
		}
	}
	key := Key(req.Path)
	rg := s.cfg.Ring()
	in := Input{
		Now: now, TTL: s.cfg.TTL, Op: req.Op, Kind: req.Kind, Owner: from, Token: req.Token,
		Primary: rg.Owner(key) == s.cfg.Self,
		Entry:   s.table[req.Path],
	}
	in.OwnerGone = in.Entry != nil && !rg.Has(in.Entry.Owner)
	if in.Primary {
		in.SettledAt = SettledAt(s.start, s.history, s.cfg.Self, key, s.cfg.TTL)
	}
	// A renewal of the token's own live reservation is decided without the
	// records; Check may scan many of them, under the lock every other
	// request of this primary waits on.
	ownRenewal := req.Op == OpRenew && in.Entry != nil && in.Entry.Token == req.Token && !in.OwnerGone
	if req.Op != OpRelease && !ownRenewal {
		in.Exists = s.cfg.Check(req.Kind, req.Path)
	}
	var written gossip.Record
	if req.Op == OpCommit {
		if r, ok := s.cfg.Records.Get(req.Key); ok && !r.Deleted && bytes.Equal(r.Value, req.Value) {
			in.Written, written = true, r
		}
	}
	d := Decide(in)
	ans := answer{V: wireVersion, Verdict: d.Verdict}
	switch d.Verdict {
	case Granted, Renewed:
		// The lease runs from now; the writer counts it from when it sent
		// the request, which is before began, plus HeldMS.
		ans.TTLMS = s.cfg.TTL.Milliseconds()
		ans.HeldMS = now.Sub(began).Milliseconds()
	case Committed:
		if !in.Written {
			rec, err := s.cfg.Records.Put(req.Key, req.Value)
			if err != nil {
				// Nothing changes: the writer may retry while its lease lasts.
				return answer{V: wireVersion, Verdict: Lost, Failed: true, Reason: fmt.Sprintf("%s could not write the record: %v", s.cfg.Self, err)}
			}
			written = rec
		}
		ans.Record = &written
	case Exists:
		ans.Reason = in.Exists.Error()
	case Busy:
		ans.Reason = d.Holder
	case Wait:
		ans.RetryMS = max(d.RetryAt.Sub(now).Milliseconds(), 1)
	}
	if d.Entry == nil {
		delete(s.table, req.Path)
	} else {
		s.table[req.Path] = d.Entry
	}
	switch d.Verdict {
	case Granted, Committed, Released, Renewed:
		s.log.Debug("create "+req.Op.String(), "path", req.Path, "kind", req.Kind, "from", from, "verdict", d.Verdict)
	default:
		s.log.Info("create "+req.Op.String()+" refused", "path", req.Path, "kind", req.Kind, "from", from, "verdict", d.Verdict, "reason", ans.Reason)
	}
	return ans
}

// knows reports whether the table holds the token's live reservation.
func (s *Service) knows(path, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.table[path]
	return e != nil && e.Token == token && s.cfg.Now().Before(e.Expires)
}

// ask sends req to the path's primary in this node's view, or serves it
// here when that is this node.
func (s *Service) ask(ctx context.Context, req request) (answer, string, error) {
	primary := s.cfg.Ring().Owner(Key(req.Path))
	if primary == "" {
		return answer{}, "", errors.New("no alive members")
	}
	return s.askNode(ctx, primary, req)
}

// askNode sends req to the named member, or serves it here.
func (s *Service) askNode(ctx context.Context, primary string, req request) (answer, string, error) {
	if primary == s.cfg.Self {
		return s.serve(ctx, s.cfg.Self, req), primary, nil
	}
	st, err := s.cfg.Dialer.Dial(ctx, primary, Protocol)
	if err != nil {
		return answer{}, primary, err
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	var ans answer
	if err := mesh.WriteMsg(st, req); err != nil {
		st.Reset()
		return answer{}, primary, err
	}
	if err := mesh.ReadMsg(st, &ans, maxAnswer); err != nil {
		st.Reset()
		return answer{}, primary, err
	}
	if ans.V != wireVersion {
		return answer{}, primary, fmt.Errorf("%s answered protocol version %d, want %d", primary, ans.V, wireVersion)
	}
	if ans.Verdict < Granted || ans.Verdict > Lost {
		return answer{}, primary, fmt.Errorf("%s answered an unknown verdict %d", primary, ans.Verdict)
	}
	return ans, primary, nil
}

// backoff is the pause before asking again after a failed attempt.
func backoff(attempt int) time.Duration {
	return min(25*time.Millisecond<<min(attempt, 4), 400*time.Millisecond)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Reserve asks path's primary for a reservation to create it as kind. It
// returns an error matching ErrExists (a *Refused) when the path exists or
// another writer holds it, at once; it keeps asking while the primary is
// unreachable or settling, for up to ReserveTimeout. The caller must
// Commit or Release the reservation; until then it is renewed in the
// background.
func (s *Service) Reserve(ctx context.Context, kind Kind, path string) (*Reservation, error) {
	if !kind.valid() {
		return nil, fmt.Errorf("claim: unknown kind %q", kind)
	}
	req := request{V: wireVersion, Op: OpReserve, Kind: kind, Path: path, Token: newToken()}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReserveTimeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		sent := s.cfg.Now()
		actx, acancel := context.WithTimeout(ctx, askTimeout)
		ans, primary, err := s.ask(actx, req)
		acancel()
		pause := backoff(attempt)
		switch {
		case err != nil:
			last = fmt.Errorf("%s, which serializes creates of %s, did not answer", primary, path)
			if primary == "" {
				last = fmt.Errorf("no alive member can serialize creates of %s", path)
			}
			s.log.Debug("reserve: primary did not answer", "path", path, "primary", primary, "err", err)
		case ans.Verdict == Granted:
			return s.newReservation(req, primary, leaseEnd(sent, s.cfg.Now(), ans)), nil
		case ans.Verdict == Exists:
			return nil, &Refused{Path: path, Reason: ans.Reason}
		case ans.Verdict == Busy:
			return nil, &Refused{Path: path, Busy: true, Holder: ans.Reason}
		case ans.Verdict == Wait:
			last = fmt.Errorf("%s only just became the node that serializes creates of %s", primary, path)
			pause = max(pause, min(time.Duration(ans.RetryMS)*time.Millisecond, s.cfg.TTL))
		case ans.Verdict == NotPrimary:
			last = fmt.Errorf("the members do not agree yet which node serializes creates of %s", path)
		default:
			last = fmt.Errorf("%s answered %s to a reservation of %s", primary, ans.Verdict, path)
		}
		if err := sleepCtx(ctx, pause); err != nil {
			s.release(req, "") // a grant whose answer was lost must not block the path
			if last == nil {
				last = errors.New("the request was cancelled")
			}
			return nil, fmt.Errorf("cannot reserve %s: %w", path, last)
		}
	}
}

// release tells the primary a reservation is given up, best effort: if it
// does not arrive, the reservation expires. also names the member that
// last granted or renewed it, when the ring has moved the path since.
func (s *Service) release(req request, also string) {
	req.Op, req.Key, req.Value = OpRelease, "", nil
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_, primary, err := s.ask(ctx, req)
	if err != nil {
		s.log.Debug("release: primary did not answer; the reservation will expire", "path", req.Path, "err", err)
	}
	if also != "" && also != primary {
		if _, _, err := s.askNode(ctx, also, req); err != nil {
			s.log.Debug("release: the granting member did not answer; the reservation will expire", "path", req.Path, "member", also, "err", err)
		}
	}
}

// leaseEnd is when the lease that ans granted or renewed lapses, as the
// writer that sent the request at sent and read ans at answered counts it:
// a TTL from when the primary decided. The writer cannot see that moment,
// only bound it from below: the primary began to serve the request after
// it was sent, and says how long it then held it before deciding (pulling
// the path's records from every member, waiting for its lock), which
// cannot be longer than the round trip. Counting that hold keeps a slow
// primary from granting a lease that has already lapsed when its answer
// arrives, and never makes the writer's lease outlast the primary's.
func leaseEnd(sent, answered time.Time, ans answer) time.Time {
	held := min(time.Duration(ans.HeldMS)*time.Millisecond, answered.Sub(sent))
	return sent.Add(max(held, 0) + time.Duration(ans.TTLMS)*time.Millisecond)
}

// Reservation is a writer's live reservation of a path.
type Reservation struct {
	s   *Service
	req request

	mu    sync.Mutex
	lapse time.Time // the lease as the writer counts it: from when it asked
	lost  error
	at    string // the member that last granted or renewed it

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	endOnce  sync.Once
	ended    bool
}

func (s *Service) newReservation(req request, at string, lapse time.Time) *Reservation {
	r := &Reservation{s: s, req: req, at: at, lapse: lapse, stop: make(chan struct{}), done: make(chan struct{})}
	go r.renewLoop()
	return r
}

// Token is the reservation's token.
func (r *Reservation) Token() string { return r.req.Token }

func (r *Reservation) lapsed() error {
	return fmt.Errorf("%w: the reservation of %s lapsed (its primary could not be reached to renew it)", ErrLost, r.req.Path)
}

// maxRenewals bounds the renewal requests of one reservation that are out
// at once.
const maxRenewals = 4

// renewal is the outcome of one renewal request: ok when the lease was
// extended, err when the reservation is gone.
type renewal struct {
	ok  bool
	err error
}

// renewLoop keeps the lease until stopped, lost, or lapsed. Once a third
// of it has passed, as the writer counts it (at once when the grant's
// answer was slow to come, which ate into it), it asks the primary for
// another TTL; while no answer has come it asks again every tenth of a
// TTL, up to maxRenewals requests at once, each to the primary of the
// moment. A request is not cut off before the lease lapses: a primary that
// answers slowly (a loaded node, a slow link) still renews, each answer
// extending the lease from when its request was sent, while a primary that
// died or moved is asked around rather than waited for.
func (r *Reservation) renewLoop() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	var out sync.WaitGroup
	defer func() {
		cancel()
		out.Wait()
	}()
	results := make(chan renewal, maxRenewals)
	inflight := 0
	timer := r.s.after(r.untilDue())
	for {
		select {
		case <-r.stop:
			return
		case res := <-results:
			inflight--
			if res.err != nil {
				r.lose(res.err)
				return
			}
			if res.ok {
				timer = r.s.after(r.untilDue())
			}
		case <-timer:
			if err := r.checkLapse(); err != nil {
				r.lose(err)
				return
			}
			if inflight < maxRenewals {
				inflight++
				out.Add(1)
				go func() {
					defer out.Done()
					ok, err := r.renew(ctx)
					results <- renewal{ok, err}
				}()
			}
			timer = r.s.after(r.s.cfg.TTL / 10)
		}
	}
}

func (r *Reservation) lose(err error) {
	r.mu.Lock()
	r.lost = err
	r.mu.Unlock()
	r.s.log.Warn("create reservation lost", "path", r.req.Path, "err", err)
}

// checkLapse returns the lapse error once the lease has run out.
func (r *Reservation) checkLapse() error {
	r.mu.Lock()
	lapse := r.lapse
	r.mu.Unlock()
	if !r.s.cfg.Now().Before(lapse) {
		return r.lapsed()
	}
	return nil
}

// untilDue is how long until the next renewal is due: when two thirds of
// a TTL are left of the lease.
func (r *Reservation) untilDue() time.Duration {
	r.mu.Lock()
	lapse := r.lapse
	r.mu.Unlock()
	return max(lapse.Add(-2*r.s.cfg.TTL/3).Sub(r.s.cfg.Now()), 0)
}

// renew asks for another TTL, waiting for the answer until the lease
// lapses or ctx ends. It returns false when the primary could not be asked
// or did not renew (ask again) and an error when the reservation is gone.
func (r *Reservation) renew(ctx context.Context) (bool, error) {
	r.mu.Lock()
	lapse := r.lapse
	r.mu.Unlock()
	now := r.s.cfg.Now()
	if !now.Before(lapse) {
		return false, nil // the loop notices the lapse
	}
	ctx, cancel := context.WithTimeout(ctx, lapse.Sub(now))
	defer cancel()
	req := r.req
	req.Op = OpRenew
	ans, primary, err := r.s.ask(ctx, req)
	switch {
	case err != nil:
		return false, nil
	case ans.Verdict == Renewed:
		r.mu.Lock()
		// Answers may come out of order; the lease runs from the latest
		// request answered.
		l := leaseEnd(now, r.s.cfg.Now(), ans)
		if l.After(r.lapse) {
			r.lapse, r.at = l, primary
		}
		r.mu.Unlock()
		if r.s.renewed != nil {
			r.s.renewed(l)
		}
		return true, nil
	case ans.Verdict == Lost:
		return false, fmt.Errorf("%w: the reservation of %s expired at its primary", ErrLost, r.req.Path)
	}
	return false, nil // NotPrimary, Wait: views differ; ask again soon
}

// stopRenewing stops the background renewals and waits for them.
func (r *Reservation) stopRenewing() {
	r.stopOnce.Do(func() { close(r.stop) })
	<-r.done
}

// Commit writes the record key=value at the path's primary, which
// consumes the reservation, and merges the written record here. It fails
// with ErrLost when the lease ran out first, and with an error matching
// ErrExists when a forced write took the path meanwhile; the record is
// then not written. A reservation is committed or released once.
func (r *Reservation) Commit(ctx context.Context, key string, value []byte) (gossip.Record, error) {
	r.stopRenewing()
	r.mu.Lock()
	lost, lapse := r.lost, r.lapse
	r.mu.Unlock()
	if lost != nil {
		return gossip.Record{}, lost
	}
	r.endOnce.Do(func() { r.ended = true })
	req := r.req
	req.Op, req.Key, req.Value = OpCommit, key, value
	for attempt := 0; ; attempt++ {
		now := r.s.cfg.Now()
		if !now.Before(lapse) {
			return gossip.Record{}, r.lapsed()
		}
		actx, cancel := context.WithTimeout(ctx, lapse.Sub(now))
		ans, primary, err := r.s.ask(actx, req)
		cancel()
		if err == nil {
			switch ans.Verdict {
			case Committed:
				if ans.Record == nil || ans.Record.Key != key {
					return gossip.Record{}, fmt.Errorf("%s answered a commit of %s without its record", primary, r.req.Path)
				}
				if _, err := r.s.cfg.Records.Merge([]gossip.Record{*ans.Record}); err != nil {
					return gossip.Record{}, fmt.Errorf("merge the record of %s: %w", r.req.Path, err)
				}
				return *ans.Record, nil
			case Exists:
				return gossip.Record{}, &Refused{Path: r.req.Path, Reason: ans.Reason}
			case Lost:
				if ans.Failed {
					return gossip.Record{}, errors.New(ans.Reason)
				}
				return gossip.Record{}, fmt.Errorf("%w: the reservation of %s expired at its primary %s", ErrLost, r.req.Path, primary)
			}
		}
		if ctx.Err() != nil || sleepCtx(ctx, backoff(attempt)) != nil {
			r.s.release(r.req, r.granter())
			return gossip.Record{}, fmt.Errorf("the write of %s was cancelled before its record was committed", r.req.Path)
		}
	}
}

// Release gives the reservation up, if it was not committed. Safe to call
// more than once and after Commit.
func (r *Reservation) Release() {
	r.stopRenewing()
	first := false
	r.endOnce.Do(func() { first = true; r.ended = true })
	if first {
		r.s.release(r.req, r.granter())
	}
}

func (r *Reservation) granter() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at
}
