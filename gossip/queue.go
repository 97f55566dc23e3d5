package gossip

import "sync"

// pump delivers values to a channel in the order they were pushed, through
// an unbounded in-memory queue, so that push never blocks the producer (a
// memberlist callback or the record store) whatever the consumer does.
//
// One goroutine per pump moves values from the queue to out. Its owner is
// whoever created the pump: it must call stop, which ends the goroutine,
// waits for it, drops undelivered values and closes out.
type pump[T any] struct {
	out  chan T
	wake chan struct{} // capacity 1: "the queue may be non-empty"
	quit chan struct{} // closed by stop
	done chan struct{} // closed when run has returned

	mu     sync.Mutex
	queue  []T
	closed bool
	once   sync.Once
}

// newPump starts a pump; the caller owns it and must call stop.
func newPump[T any]() *pump[T] {
	p := &pump[T]{
		out:  make(chan T),
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go p.run()
	return p
}

// push queues v for delivery. It never blocks; after stop it does nothing.
func (p *pump[T]) push(v T) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, v)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// stop ends delivery, waits for the pump goroutine and closes out. It is
// safe to call more than once and from several goroutines.
func (p *pump[T]) stop() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.queue = nil
		p.mu.Unlock()
		close(p.quit)
	})
	<-p.done
}

func (p *pump[T]) run() {
	defer close(p.done)
	defer close(p.out)
	var zero T
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.mu.Unlock()
			select {
			case <-p.wake:
				continue
			case <-p.quit:
				return
			}
		}
		v := p.queue[0]
		p.queue[0] = zero
		p.queue = p.queue[1:]
		if len(p.queue) == 0 {
			p.queue = nil // let the backing array go
		}
		p.mu.Unlock()
		select {
		case p.out <- v:
		case <-p.quit:
			return
		}
	}
}
