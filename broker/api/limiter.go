package api

import (
	"container/list"
	"context"
	"crypto/sha256"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

// LoginLimit bounds password guessing at POST /api/v1/login (and at the
// old-password check of PUT /api/v1/password) without letting a guesser
// lock the real user out.
//
// Per client address (an IPv4 address, or an IPv6 /64, since one host
// commonly holds a whole /64): after Failures failed attempts within
// Window, counted from the first of them, every password attempt from that
// address, for any name, is answered 429 until the window is over. An
// attempt counts as a failure from the moment it is let through, before
// its password is hashed, so parallel attempts cannot overrun the limit; a
// successful attempt gives its count back but does not forgive the
// address's earlier failures (else a guesser with one account of its own
// could reset its limit).
//
// Per account name (whether or not the account exists, so that the limit
// does not tell which names do): after NameFailures failed attempts within
// Window, from any addresses, attempts for that name are spaced
// NameInterval apart: one that comes sooner after the previous one let
// through is answered 429 with the seconds left in Retry-After. Nothing is
// locked: the right password still logs in from any address that is not
// itself blocked, at most NameInterval later, while guessers spread over
// many addresses get one guess per NameInterval. Addresses from which the
// name logged in within the last 30 days are exempt from the spacing, so
// the real user at a known place is not slowed at all.
//
// A certificate login is not limited (a certificate cannot be guessed, and
// it is the way in for a user whose address is blocked), but its failures
// count toward the address's Failures, and once the address is blocked
// they are answered 429 without an event, so a flood cannot fill the event
// log.
//
// The limiter's memory is bounded: it tracks at most 16384 addresses,
// 16384 names (by their SHA-256, so a long name costs no more) and 16384
// known name-address pairs, dropping the oldest first.
type LoginLimit struct {
	// Failures per address within Window before the address is blocked;
	// zero means 5.
	Failures int
	// Window over which failures are counted, from the first of them;
	// zero means 15 minutes.
	Window time.Duration
	// NameFailures per name within Window before its attempts are spaced;
	// zero means Failures.
	NameFailures int
	// NameInterval is the spacing of attempts for a name beyond
	// NameFailures; zero means 1 minute.
	NameInterval time.Duration
}

func (c LoginLimit) valid() bool {
	return c.Failures >= 0 && c.Window >= 0 && c.NameFailures >= 0 && c.NameInterval >= 0
}

func (c LoginLimit) withDefaults() LoginLimit {
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.Window == 0 {
		c.Window = 15 * time.Minute
	}
	if c.NameFailures == 0 {
		c.NameFailures = c.Failures
	}
	if c.NameInterval == 0 {
		c.NameInterval = time.Minute
	}
	return c
}

// knownAddressFor is how long a successful login exempts its address from
// the spacing of its name.
const knownAddressFor = 30 * 24 * time.Hour

// maxTracked bounds each of the limiter's tables.
const maxTracked = 1 << 14

type addrEntry struct {
	first    time.Time // of the current window of failures
	failures int
	pending  int // attempts let through and not yet decided
}

type nameEntry struct {
	first    time.Time
	failures int
	pending  int
	last     time.Time // the last attempt let through that was not exempt
}

type knownKey struct {
	name [32]byte
	addr string
}

type limiter struct {
	cfg LoginLimit
	now func() time.Time

	mu    sync.Mutex
	addrs *table[string, addrEntry]
	names *table[[32]byte, nameEntry]
	known *table[knownKey, time.Time]
}

func newLimiter(cfg LoginLimit, now func() time.Time) *limiter {
	return &limiter{
		cfg:   cfg.withDefaults(),
		now:   now,
		addrs: newTable[string, addrEntry](maxTracked),
		names: newTable[[32]byte, nameEntry](maxTracked),
		known: newTable[knownKey, time.Time](maxTracked),
	}
}

// attempt is a password attempt let through the limiter; it holds a
// reservation on its address and its name until it is decided (fail,
// succeed) or cancelled.
type attempt struct {
	addr string
	name [32]byte
}

// addressKey is what the limiter counts an address by: the address, or
// its /64 for IPv6.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip // not from net/http's server; still one key per peer
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// begin lets an attempt for name from the address through, reserving a
// failure on both, or says how long to wait.
func (l *limiter) begin(addr, name string) (attempt, time.Duration) {
	at := attempt{addr: addr, name: sha256.Sum256([]byte(name))}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.addrs.get(addr)
	if a != nil {
		l.expireAddr(addr, a, now)
		if wait := l.addrWait(a, now); wait > 0 {
			return at, wait
		}
	}
	n := l.names.get(at.name)
	exempt := false
	if k := l.known.get(knownKey{at.name, addr}); k != nil {
		if now.Sub(*k) < knownAddressFor {
			exempt = true
		} else {
			l.known.del(knownKey{at.name, addr})
		}
	}
	if n != nil {
		l.expireName(at.name, n, now)
		if !exempt && n.failures+n.pending >= l.cfg.NameFailures {
			if left := n.last.Add(l.cfg.NameInterval).Sub(now); left > 0 {
				return at, left
			}
		}
	}
	if a == nil {
		a = l.addrs.put(addr, addrEntry{first: now})
	}
	if n == nil {
		n = l.names.put(at.name, nameEntry{first: now})
	}
	a.pending++
	n.pending++
	if !exempt {
		n.last = now
	}
	return at, 0
}

// expireAddr starts a new window once the old one is over.
func (l *limiter) expireAddr(key string, a *addrEntry, now time.Time) {
	if a.failures > 0 && now.Sub(a.first) >= l.cfg.Window {
		a.failures, a.first = 0, now
		l.addrs.touch(key)
	}
}

func (l *limiter) expireName(key [32]byte, n *nameEntry, now time.Time) {
	if n.failures > 0 && now.Sub(n.first) >= l.cfg.Window {
		n.failures, n.first = 0, now
		l.names.touch(key)
	}
}

// addrWait is how long the address is blocked: until its window is over
// when its failures reached the limit, briefly when attempts in flight
// make up the rest.
func (l *limiter) addrWait(a *addrEntry, now time.Time) time.Duration {
	switch {
	case a.failures >= l.cfg.Failures:
		return a.first.Add(l.cfg.Window).Sub(now)
	case a.failures+a.pending >= l.cfg.Failures:
		return time.Second
	}
	return 0
}

// cancel gives the reservation back: the attempt was not made.
func (l *limiter) cancel(at attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.release(at, false)
}

// fail turns the reservation into a failure.
func (l *limiter) fail(at attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.release(at, true)
}

// succeed gives the reservation back and remembers the address as known
// for the name.
func (l *limiter) succeed(at attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.release(at, false)
	k := knownKey{at.name, at.addr}
	if t := l.known.get(k); t != nil {
		*t = l.now()
		l.known.touch(k)
	} else {
		l.known.put(k, l.now())
	}
}

func (l *limiter) release(at attempt, failed bool) {
	now := l.now()
	// An entry may have been dropped meanwhile (the tables are bounded);
	// then there is nothing to give back, and a failure starts it anew.
	a := l.addrs.get(at.addr)
	if a != nil && a.pending > 0 {
		a.pending--
	}
	n := l.names.get(at.name)
	if n != nil && n.pending > 0 {
		n.pending--
	}
	if !failed {
		// Entries with nothing to count go, so that successful logins
		// take no room.
		if a != nil && a.failures == 0 && a.pending == 0 {
			l.addrs.del(at.addr)
		}
		if n != nil && n.failures == 0 && n.pending == 0 {
			l.names.del(at.name)
		}
		return
	}
	if a == nil {
		a = l.addrs.put(at.addr, addrEntry{first: now})
	}
	l.expireAddr(at.addr, a, now)
	if a.failures == 0 {
		a.first = now
	}
	a.failures++
	if n == nil {
		n = l.names.put(at.name, nameEntry{first: now, last: now})
	}
	l.expireName(at.name, n, now)
	if n.failures == 0 {
		n.first = now
	}
	n.failures++
}

// failAddress counts a failure of a login that has no password to guess
// (a certificate login) against the address, unless the address is
// blocked already; then it says how long.
func (l *limiter) failAddress(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.addrs.get(addr)
	if a == nil {
		a = l.addrs.put(addr, addrEntry{first: now})
	}
	l.expireAddr(addr, a, now)
	if wait := l.addrWait(a, now); wait > 0 {
		return wait
	}
	if a.failures == 0 {
		a.first = now
	}
	a.failures++
	return 0
}

// table is a map bounded to max entries that drops the oldest first (by
// insertion, or by the last touch), in constant time.
type table[K comparable, V any] struct {
	max   int
	m     map[K]*list.Element
	order list.List // of *item[K, V], oldest in front
}

type item[K comparable, V any] struct {
	key K
	val V
}

func newTable[K comparable, V any](max int) *table[K, V] {
	return &table[K, V]{max: max, m: map[K]*list.Element{}}
}

func (t *table[K, V]) len() int { return len(t.m) }

func (t *table[K, V]) get(k K) *V {
	if e := t.m[k]; e != nil {
		return &e.Value.(*item[K, V]).val
	}
	return nil
}

// put adds k (not present) and returns its value.
func (t *table[K, V]) put(k K, v V) *V {
	for len(t.m) >= t.max && t.order.Len() > 0 {
		oldest := t.order.Front()
		delete(t.m, oldest.Value.(*item[K, V]).key)
		t.order.Remove(oldest)
	}
	it := &item[K, V]{key: k, val: v}
	t.m[k] = t.order.PushBack(it)
	return &it.val
}

// touch makes k the newest.
func (t *table[K, V]) touch(k K) {
	if e := t.m[k]; e != nil {
		t.order.MoveToBack(e)
	}
}

func (t *table[K, V]) del(k K) {
	if e := t.m[k]; e != nil {
		t.order.Remove(e)
		delete(t.m, k)
	}
}

// hashMemoryBudget is the memory that the password hashes computed at once
// may take together when Config.MaxConcurrentHashes is zero.
const hashMemoryBudget = 256 << 20

// hashSlots is the default bound on concurrent password hashes: as many as
// fit in hashMemoryBudget at the configured cost, at most one per CPU
// (argon2 is CPU-bound: more at once only makes each slower), at least one.
func hashSlots(cost PasswordCost, cpus int) int {
	perHash := int64(cost.WithDefaults().MemoryKiB) << 10
	n := int64(hashMemoryBudget) / perHash
	if n > int64(cpus) {
		n = int64(cpus)
	}
	if n < 1 {
		n = 1
	}
	return int(n)
}

func defaultHashSlots(cost PasswordCost) int { return hashSlots(cost, runtime.NumCPU()) }

// hashGate bounds the password hashes computed at once, each of which
// takes the memory of its argon2 cost (64 MiB by default).
type hashGate chan struct{}

// try takes a slot if one is free, without waiting: a login that would
// have to wait is answered 429 instead, so a flood queues nothing.
func (g hashGate) try() bool {
	select {
	case g <- struct{}{}:
		return true
	default:
		return false
	}
}

// wait takes a slot, waiting for one; for the authenticated and
// administrative paths that set passwords.
func (g hashGate) wait(ctx context.Context) error {
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g hashGate) done() { <-g }
