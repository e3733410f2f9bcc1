package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/remotegate/remotegate/internal/idtable"
	"github.com/remotegate/remotegate/nat"
	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// Errors a refused peer is told (their text reaches it as AUTH_FAILED).
var (
	ErrUnknownParticipant  = errors.New("broker: unknown participant")
	ErrDisabledParticipant = errors.New("broker: participant disabled")
	ErrNoVPNRight          = errors.New("broker: user may not connect")
	ErrPoolExhausted       = errors.New("broker: tunnel address pool exhausted")
	ErrBeyondCapacity      = errors.New("broker: participant beyond the licensed capacity")
)

// DeviceNetworks says what is behind a device: its real LANs and, when
// they are exposed under aliases, the NAT table.
type DeviceNetworks struct {
	LANs []netip.Prefix
	NAT  *nat.Table
}

// Config configures a Broker.
type Config struct {
	// Policy is the compiled access model.
	Policy *policy.Snapshot
	// Pool is the tunnel network, e.g. 10.8.0.0/24; its first address is
	// the broker's own. It is required: an IPv4 network of at most /30
	// outside the ranges CheckNetworks names, and no device network may
	// overlap it.
	Pool netip.Prefix
	// Pool6 is the IPv6 tunnel network, e.g. fd00:8::/64; the invalid
	// Prefix (the zero value) means none: participants get IPv4 only and
	// devices may have no IPv6 networks. Its first address is the
	// broker's, and each participant's IPv6 address is the one at the
	// offset of its IPv4 address in Pool: as stable as that one (stored
	// in Addresses) without a second record. It must hold at least as many
	// addresses as Pool, outside the ranges CheckNetworks6 names.
	Pool6 netip.Prefix
	// Devices maps device names to their networks.
	Devices map[string]DeviceNetworks
	// Addresses are tunnel addresses handed out before (from the store),
	// so that participants keep theirs across restarts.
	Addresses map[string]netip.Addr
	// UserRoutes are pushed to every user in addition to the networks its
	// relations link it with, e.g. the whole alias range 10.200.0.0/16. An
	// OpenVPN 2.6 client cannot be sent new routes while connected, so a
	// relation added later is usable without reconnecting only if its
	// networks are covered by these; the policy still decides what passes.
	UserRoutes []netip.Prefix
	// FlowTable sizes the policy flow table.
	FlowTable policy.FlowFilterConfig
	// OnAddress, if set, is called (with the broker's lock held, so it must
	// not call back into the Broker) when a participant is given a new
	// tunnel address, so that it can be stored before the participant uses
	// it.
	OnAddress func(participant string, a netip.Addr)
	// Events, if set, receives connects, disconnects and refusals for the
	// event log. It is called with the broker's lock held, so it must not
	// block or call back into the Broker (queue the event).
	Events func(Event)
	// Logger receives session events; nil discards them.
	Logger *slog.Logger
	// Now is the broker's clock: it ages the switch's flows, checks the
	// relations' time windows and records when sessions came up. Nil
	// means time.Now.
	Now func() time.Time
}

// Broker is the tunnel.Handler that the transports' servers call: it
// admits participants by the access model, hands out stable tunnel
// addresses and the routes each participant may use, and switches their
// packets.
type Broker struct {
	sw  *Switch
	log *slog.Logger
	now func() time.Time

	mu        sync.Mutex
	snap      *policy.Snapshot
	pool      netip.Prefix
	pool6     netip.Prefix // invalid: no IPv6
	devices   map[string]DeviceNetworks
	addresses map[string]netip.Addr // stable per participant name
	// free hands out the offsets of tunnel addresses from the one after
	// the gateway, the lowest free first, in O(log N) rather than a scan
	// of the pool at each new participant.
	free       *idtable.Alloc
	online     map[string]tunnel.Session
	since      map[string]time.Time // when each online session was attached
	userRoutes []netip.Prefix
	onAddress  func(name string, a netip.Addr)
	events     func(Event)
	// totals of the sessions that ended, for the byte counters
	closedIn, closedOut uint64
	handshakes          histogram

	// capacity is how many participants may connect (0: no limit), and
	// capacityText describes it and the licenses behind it for refusals.
	capacity     int
	capacityText string
	// senior is the set of participants within capacity, the oldest
	// first; computed for seniorOf and rebuilt when the model changes.
	senior   map[string]bool
	seniorOf *policy.Snapshot
}

// Event is something the event log records: Kind is "connect",
// "disconnect" or "refused".
type Event struct {
	Kind        string
	Participant string
	Message     string
	Attrs       map[string]string
}

func (b *Broker) emit(kind, participant, msg string, attrs map[string]string) {
	if b.events != nil {
		b.events(Event{Kind: kind, Participant: participant, Message: msg, Attrs: attrs})
	}
}

// New returns a Broker.
func New(cfg Config) (*Broker, error) {
	if cfg.Policy == nil {
		return nil, errors.New("broker: Config.Policy is required")
	}
	if err := CheckNetworks6(cfg.Pool, cfg.Pool6, cfg.Devices); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{
		sw: NewSwitch(cfg.Policy, SwitchConfig{FlowTable: cfg.FlowTable, Now: cfg.Now}), log: cfg.Logger, now: cfg.Now, snap: cfg.Policy, pool: cfg.Pool.Masked(),
		pool6:   cfg.Pool6.Masked(),
		devices: cfg.Devices, addresses: map[string]netip.Addr{}, online: map[string]tunnel.Session{},
		since: map[string]time.Time{}, userRoutes: cfg.UserRoutes, onAddress: cfg.OnAddress, events: cfg.Events,
	}
	if b.devices == nil {
		b.devices = map[string]DeviceNetworks{}
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	// Addresses from the one after the gateway to the one before the
	// broadcast address.
	b.free = idtable.NewAlloc(uint64(max(0, 1<<(32-b.pool.Bits())-3)))
	for name, a := range cfg.Addresses {
		if !b.pool.Contains(a) || a == b.Gateway() {
			return nil, fmt.Errorf("broker: stored address %v of %q is outside the pool %v", a, name, b.pool)
		}
		b.addresses[name] = a
		if i, ok := b.offset(a); ok {
			b.free.Take(i)
		}
	}
	return b, b.rebuild()
}

// Gateway is the broker's own address in the tunnel network.
func (b *Broker) Gateway() netip.Addr { return b.pool.Addr().Next() }

// Gateway6 is the broker's own address in the IPv6 tunnel network; invalid
// without one.
func (b *Broker) Gateway6() netip.Addr {
	if !b.pool6.IsValid() {
		return netip.Addr{}
	}
	return b.pool6.Addr().Next()
}

// address6 is the IPv6 tunnel address that goes with the IPv4 one a: the
// address at the same offset in the IPv6 pool; invalid without one.
func (b *Broker) address6(a netip.Addr) netip.Addr {
	if !b.pool6.IsValid() || !a.IsValid() {
		return netip.Addr{}
	}
	base, v := b.pool.Addr().As4(), a.As4()
	off := (uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])) -
		(uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]))
	r := b.pool6.Addr().As16()
	// The pool6 check guarantees the offset fits in its host bits, which
	// are zero in the masked base: adding is or-ing, with carries.
	var carry uint32
	for i := 15; i >= 12; i-- {
		sum := uint32(r[i]) + off&0xff + carry
		r[i], carry, off = byte(sum), sum>>8, off>>8
	}
	for i := 11; i >= 0 && carry != 0; i-- {
		sum := uint32(r[i]) + carry
		r[i], carry = byte(sum), sum>>8
	}
	return netip.AddrFrom16(r)
}

// addressesOf is the tunnel addresses of a participant with the IPv4
// address a: a and, with an IPv6 pool, its IPv6 companion.
func (b *Broker) addressesOf(a netip.Addr) []netip.Addr {
	if a6 := b.address6(a); a6.IsValid() {
		return []netip.Addr{a, a6}
	}
	return []netip.Addr{a}
}

// Switch returns the packet switch (for its statistics).
func (b *Broker) Switch() *Switch { return b.sw }

// Addresses returns the tunnel addresses handed out so far, to be stored.
func (b *Broker) Addresses() map[string]netip.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]netip.Addr, len(b.addresses))
	for k, v := range b.addresses {
		out[k] = v
	}
	return out
}

// Admit decides whether the authenticated peer may open a tunnel: it must
// be a known, enabled participant (a user also needs the connect-vpn
// right). It gets its stable address and routes to the networks its
// relations link it with (a user: the devices' aliases; a device: the
// tunnel network, for the replies).
func (b *Broker) Admit(_ context.Context, id tunnel.Identity, remote netip.AddrPort) (tunnel.Assignment, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	snap := b.snap
	p, ok := snap.Lookup(id.Name)
	if !ok {
		b.log.Info("refused", "participant", id.Name, "remote", remote, "reason", "unknown")
		b.emit("refused", id.Name, "not a participant", map[string]string{"remote": remote.String()})
		return tunnel.Assignment{}, fmt.Errorf("%w %q", ErrUnknownParticipant, id.Name)
	}
	_, isDevice := b.devices[id.Name]
	switch {
	case !snap.Enabled(p):
		b.log.Info("refused", "participant", id.Name, "remote", remote, "reason", "disabled")
		b.emit("refused", id.Name, "participant disabled", map[string]string{"remote": remote.String()})
		return tunnel.Assignment{}, fmt.Errorf("%w: %q", ErrDisabledParticipant, id.Name)
	case !isDevice && !snap.Can(id.Name, policy.RightConnectVPN):
		b.log.Info("refused", "participant", id.Name, "remote", remote, "reason", "no connect-vpn right")
		b.emit("refused", id.Name, "no connect-vpn right", map[string]string{"remote": remote.String()})
		return tunnel.Assignment{}, fmt.Errorf("%w: %q lacks the connect-vpn right", ErrNoVPNRight, id.Name)
	case !b.withinCapacity(id.Name):
		reason := "beyond the licensed capacity of " + b.capacityText
		b.log.Info("refused", "participant", id.Name, "remote", remote, "reason", reason)
		b.emit("refused", id.Name, reason, map[string]string{"remote": remote.String()})
		return tunnel.Assignment{}, fmt.Errorf("%w: %q is not among the %d oldest participants (%s)", ErrBeyondCapacity, id.Name, b.capacity, b.capacityText)
	}
	addr, err := b.addressFor(id.Name)
	if err != nil {
		return tunnel.Assignment{}, err
	}
	asg := tunnel.Assignment{
		Addresses: []netip.Prefix{netip.PrefixFrom(addr, b.pool.Bits())},
		Gateway:   b.Gateway(),
		Routes:    b.routesFor(snap, p, isDevice),
	}
	if a6 := b.address6(addr); a6.IsValid() {
		asg.Addresses = append(asg.Addresses, netip.PrefixFrom(a6, b.pool6.Bits()))
		asg.Gateway6 = b.Gateway6()
	}
	if isDevice {
		asg.Networks = b.devices[id.Name].LANs
	}
	b.log.Info("admitted", "participant", id.Name, "remote", remote, "addresses", asg.Addresses, "routes", asg.Routes)
	return asg, nil
}

// SetCapacity limits how many participants may connect: only the n oldest
// (policy.Model.Seniority) are admitted, so that when a license lapses the
// participants created last lose access and the others keep working.
// Sessions already up stay up; the limit applies at the next connect. n <= 0
// removes the limit, which is also the zero value. description, e.g.
// license.Capacity.String(), is given to refused participants and the
// event log.
func (b *Broker) SetCapacity(n int, description string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.capacity, b.capacityText = max(n, 0), description
	b.senior, b.seniorOf = nil, nil
}

// withinCapacity reports whether name is among the participants that may
// connect; b.mu is held.
func (b *Broker) withinCapacity(name string) bool {
	if b.capacity == 0 {
		return true
	}
	if b.seniorOf != b.snap || b.senior == nil {
		names := b.snap.Model().Seniority()
		b.senior = make(map[string]bool, min(len(names), b.capacity))
		for _, n := range names[:min(len(names), b.capacity)] {
			b.senior[n] = true
		}
		b.seniorOf = b.snap
	}
	return b.senior[name]
}

func (b *Broker) addressFor(name string) (netip.Addr, error) {
	if a, ok := b.addresses[name]; ok {
		return a, nil
	}
	i, ok := b.free.Get()
	if !ok {
		return netip.Addr{}, ErrPoolExhausted
	}
	first := b.Gateway().Next().As4()
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], binary.BigEndian.Uint32(first[:])+i)
	a := netip.AddrFrom4(v)
	b.addresses[name] = a
	if b.onAddress != nil {
		b.onAddress(name, a)
	}
	return a, nil
}

// offset is the offset of a from the first address after the gateway,
// false if a is not one the pool hands out (the network or the broadcast
// address, stored by an older version).
func (b *Broker) offset(a netip.Addr) (uint32, bool) {
	first, v := b.Gateway().Next().As4(), a.As4()
	i := binary.BigEndian.Uint32(v[:]) - binary.BigEndian.Uint32(first[:])
	return i, a.Is4() && b.pool.Contains(a) && a != b.Gateway() && int64(i) < 1<<(32-b.pool.Bits())-3
}

// routesFor: a user gets the networks of every device it is linked with,
// under their aliases; a device gets the tunnel network.
func (b *Broker) routesFor(snap *policy.Snapshot, p policy.ParticipantID, isDevice bool) []netip.Prefix {
	if isDevice {
		if b.pool6.IsValid() {
			return []netip.Prefix{b.pool, b.pool6}
		}
		return []netip.Prefix{b.pool}
	}
	routes := append([]netip.Prefix(nil), b.userRoutes...)
	for name, nets := range b.devices {
		d, ok := snap.Lookup(name)
		if !ok || !snap.Linked(p, d) {
			continue
		}
		if nets.NAT != nil {
			for _, m := range nets.NAT.Mappings() {
				routes = append(routes, m.Alias)
			}
		} else {
			routes = append(routes, nets.LANs...)
		}
	}
	return routes
}

// Up attaches a session whose data channel is ready.
func (b *Broker) Up(s tunnel.Session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := s.Identity().Name
	if old := b.online[name]; old != nil && old != s {
		go old.Close(errors.New("broker: replaced by a new session"))
	}
	b.online[name] = s
	b.since[name] = b.now()
	if r, ok := s.(tunnel.Reporter); ok {
		b.handshakes.observe(r.HandshakeDuration().Seconds())
	}
	b.log.Info("connected", "participant", name, "remote", s.Remote(), "address", b.addresses[name])
	b.emit("connect", name, "connected", map[string]string{"remote": s.Remote().String(), "address": b.addresses[name].String()})
	b.attach(name, s)
}

// attach puts the session of a participant on the switch (replacing the
// one it had), in O(1): rebuilding the switch's tables at every connect
// would cost O(N) each, O(N²) to fill a broker. b.mu is held.
func (b *Broker) attach(name string, s tunnel.Session) {
	p, ok := b.snap.Lookup(name)
	if !ok {
		return
	}
	if err := b.sw.Attach(p, s, b.addressesOf(b.addresses[name])); err != nil {
		b.log.Error("switch tables", "participant", name, "error", err)
	}
}

// detach takes the session of a participant off the switch, in O(1); b.mu
// is held.
func (b *Broker) detach(name string, s tunnel.Session) {
	if p, ok := b.snap.Lookup(name); ok {
		b.sw.Detach(p, s)
	}
}

// Down detaches a session.
func (b *Broker) Down(s tunnel.Session, cause error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	name := s.Identity().Name
	if b.online[name] == s {
		b.forget(name, s)
		b.detach(name, s)
		b.log.Info("disconnected", "participant", name, "reason", cause)
		b.emit("disconnect", name, "disconnected", map[string]string{"reason": fmt.Sprint(cause)})
	}
}

// Deliver switches packets from a session.
func (b *Broker) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	b.sw.Deliver(from, bufs, sizes, offset)
}

// SetPolicy installs a new access model: it takes effect for the next
// packet of every live session, and sessions of participants that are now
// unknown, disabled or without the right to connect are closed.
func (b *Broker) SetPolicy(snap *policy.Snapshot) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.apply(snap, b.devices)
}

// Apply installs a new access model and new device networks together, as
// SetPolicy does for the model alone. If CheckNetworks refuses a network
// nothing changes and the error wraps ErrBadNetwork, or ErrRouteConflict if
// the networks of two participants overlap.
func (b *Broker) Apply(snap *policy.Snapshot, devices map[string]DeviceNetworks) error {
	if snap == nil {
		return errors.New("broker: Apply: nil snapshot")
	}
	if devices == nil {
		devices = map[string]DeviceNetworks{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := CheckNetworks6(b.pool, b.pool6, devices); err != nil {
		return err
	}
	return b.apply(snap, devices)
}

func (b *Broker) apply(snap *policy.Snapshot, devices map[string]DeviceNetworks) error {
	oldSnap, oldDevices := b.snap, b.devices
	b.snap, b.devices = snap, devices
	if err := b.rebuild(); err != nil {
		b.snap, b.devices = oldSnap, oldDevices
		return err
	}
	// Sessions are closed only once the new tables are known to install,
	// and the tables are built again only if a session went.
	closed := false
	for name, s := range b.online {
		_, isDevice := b.devices[name]
		p, _ := snap.Lookup(name)
		if !snap.Enabled(p) || (!isDevice && !snap.Can(name, policy.RightConnectVPN)) {
			b.closeLocked(name, s, fmt.Errorf("%w: %q", ErrDisabledParticipant, name))
			closed = true
		}
	}
	if !closed {
		return nil
	}
	return b.rebuild()
}

// closeLocked detaches and closes a live session; b.mu is held. The close
// runs in its own goroutine because the transport calls Down, which takes
// b.mu.
func (b *Broker) closeLocked(name string, s tunnel.Session, cause error) {
	b.forget(name, s)
	b.log.Info("closing", "participant", name, "reason", cause)
	b.emit("disconnect", name, "closed by the broker", map[string]string{"reason": cause.Error()})
	go s.Close(cause)
}

// forget detaches a session, keeping its byte counts; b.mu is held.
func (b *Broker) forget(name string, s tunnel.Session) {
	delete(b.online, name)
	delete(b.since, name)
	if r, ok := s.(tunnel.Reporter); ok {
		c := r.Counters()
		b.closedIn += c.BytesIn
		b.closedOut += c.BytesOut
	}
}

// Terminate closes the live session of a participant, if there is one,
// and reports whether there was.
func (b *Broker) Terminate(participant string, cause error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.online[participant]
	if s == nil {
		return false
	}
	if cause == nil {
		cause = errors.New("broker: terminated by an administrator")
	}
	b.closeLocked(participant, s, cause)
	b.detach(participant, s)
	return true
}

// SessionInfo describes a live session for the management view.
type SessionInfo struct {
	Participant string         `json:"participant"`
	Protocol    string         `json:"protocol"`
	Remote      netip.AddrPort `json:"remote"`
	Address     netip.Addr     `json:"address"`
	Since       time.Time      `json:"since"`
	BytesIn     uint64         `json:"bytes_in"`
	BytesOut    uint64         `json:"bytes_out"`
}

// Sessions lists the live sessions, ordered by participant name. Protocol,
// Since and the byte counts come from sessions that implement
// tunnel.Reporter.
func (b *Broker) Sessions() []SessionInfo {
	b.mu.Lock()
	out := make([]SessionInfo, 0, len(b.online))
	for name, s := range b.online {
		info := SessionInfo{Participant: name, Remote: s.Remote(), Address: b.addresses[name], Since: b.since[name]}
		if r, ok := s.(tunnel.Reporter); ok {
			c := r.Counters()
			info.Protocol, info.BytesIn, info.BytesOut = r.Protocol(), c.BytesIn, c.BytesOut
			if t := r.Since(); !t.IsZero() {
				info.Since = t
			}
		}
		out = append(out, info)
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Participant < out[j].Participant })
	return out
}

// Status is a participant's state as the management view shows it.
type Status string

// Participant states.
const (
	StatusOnline   Status = "online"
	StatusOffline  Status = "offline"
	StatusDisabled Status = "disabled"
	StatusUnknown  Status = "unknown" // not in the access model
)

// Status returns the participant's state.
func (b *Broker) Status(participant string) Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.snap.Lookup(participant)
	switch {
	case !ok:
		return StatusUnknown
	case !b.snap.Enabled(p):
		return StatusDisabled
	case b.online[participant] != nil:
		return StatusOnline
	}
	return StatusOffline
}

// rebuild installs switch tables for the current snapshot and sessions;
// b.mu is held. Devices are routed whether online or not, so that packets
// to an offline plant are counted as such rather than as unroutable.
func (b *Broker) rebuild() error {
	var eps []Endpoint
	for name, s := range b.online {
		if _, isDevice := b.devices[name]; isDevice {
			continue
		}
		if p, ok := b.snap.Lookup(name); ok {
			eps = append(eps, Endpoint{Participant: p, Session: s, Addresses: b.addressesOf(b.addresses[name])})
		}
	}
	for name, d := range b.devices {
		p, ok := b.snap.Lookup(name)
		if !ok {
			continue
		}
		e := Endpoint{Participant: p, LANs: d.LANs, NAT: d.NAT}
		if s := b.online[name]; s != nil {
			e.Session, e.Addresses = s, b.addressesOf(b.addresses[name])
		}
		eps = append(eps, e)
	}
	return b.sw.Update(b.snap, eps)
}

var _ tunnel.Handler = (*Broker)(nil)
