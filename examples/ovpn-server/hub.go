package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"

	"github.com/remotegate/remotegate/internal/idtable"
	"github.com/remotegate/remotegate/tunnel"
)

// hub is the example server's tunnel.Handler: it hands out tunnel addresses
// from the server network, writes client packets to the TUN device, relays
// between clients when client-to-client is on, and sends packets read from
// the TUN device to the client that owns the destination address.
type hub struct {
	network netip.Prefix
	gateway netip.Addr
	// network6 is the IPv6 pool (server-ipv6); invalid when there is none.
	network6 netip.Prefix
	gateway6 netip.Addr
	routes   []netip.Prefix
	c2c      bool
	tun      tunnel.Device // nil: no TUN (relay only)

	mu sync.RWMutex
	// pool4 and pool6 hand out the offsets of client addresses from
	// first4 and first6, the lowest free first, in O(log N): a connect
	// costs the same with 10 or 10,000 clients up.
	pool4, pool6   *idtable.Alloc
	first4, first6 netip.Addr
	pending        map[netip.AddrPort]addrPair
	byAddr         map[netip.Addr]tunnel.Session
	addrOf         map[uint64]addrPair

	tunMu    sync.Mutex
	tunBatch [][]byte
	one      [1][]byte
}

// addrPair is a client's tunnel addresses; v6 is invalid without an IPv6
// pool.
type addrPair struct{ v4, v6 netip.Addr }

var errPoolExhausted = errors.New("address pool exhausted")

// newHub makes the handler for the IPv4 network and, when network6 is
// valid, the IPv6 network (server-ipv6): its first address is the
// server's, and clients get addresses from ::1000 on, as stock openvpn
// hands them out, so that a client keeps the same addresses when the
// server is swapped.
func newHub(network, network6 netip.Prefix, routes []netip.Prefix, c2c bool, tun tunnel.Device) *hub {
	network = network.Masked()
	h := &hub{
		network: network,
		gateway: network.Addr().Next(),
		routes:  routes,
		c2c:     c2c,
		tun:     tun,
		pending: map[netip.AddrPort]addrPair{},
		byAddr:  map[netip.Addr]tunnel.Session{},
		addrOf:  map[uint64]addrPair{},
	}
	// Clients get the addresses from the one after the gateway to the one
	// before the broadcast address.
	h.first4 = h.gateway.Next()
	h.pool4 = idtable.NewAlloc(uint64(max(0, 1<<(32-network.Bits())-3)))
	if network6.IsValid() {
		h.network6 = network6.Masked()
		h.gateway6 = h.network6.Addr().Next()
		h.first6 = h.pool6Start()
		// The addresses from first6 to the end of the network, at most
		// 2³²-1 of them (more clients than anything serves).
		n := uint64(1<<32 - 1)
		if host := 128 - h.network6.Bits(); host < 64 {
			n = min(n, 1<<host-offset6(h.network6.Addr(), h.first6))
		}
		h.pool6 = idtable.NewAlloc(n)
	}
	return h
}

// addr4 is the address at offset i from first4 (i is below the pool's
// size, so the sum stays in the network).
func (h *hub) addr4(i uint32) netip.Addr {
	b := h.first4.As4()
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])+i)
	return netip.AddrFrom4(b)
}

// offset4 is the offset of a from first4.
func (h *hub) offset4(a netip.Addr) uint32 {
	x, y := a.As4(), h.first4.As4()
	return binary.BigEndian.Uint32(x[:]) - binary.BigEndian.Uint32(y[:])
}

// addr6 is the address at offset i from first6.
func (h *hub) addr6(i uint32) netip.Addr {
	b := h.first6.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	lo2 := lo + uint64(i)
	if lo2 < lo {
		hi++
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo2)
	return netip.AddrFrom16(b)
}

// offset6 is the offset of a from base, for addresses less than 2⁶⁴ apart.
func offset6(base, a netip.Addr) uint64 {
	x, y := a.As16(), base.As16()
	return binary.BigEndian.Uint64(x[8:]) - binary.BigEndian.Uint64(y[8:])
}

// pool6Start is the first client address of the IPv6 network: ::1000, or
// the address after the server's when the network is too small for that.
func (h *hub) pool6Start() netip.Addr {
	a := h.network6.Addr().As16()
	a[14] |= 0x10
	if s := netip.AddrFrom16(a); h.network6.Contains(s) && h.network6.Bits() <= 112 {
		return s
	}
	return h.gateway6.Next()
}

// Admit gives the client the lowest free address after the gateway, and
// the lowest free one of the IPv6 pool when there is one.
func (h *hub) Admit(_ context.Context, _ tunnel.Identity, remote netip.AddrPort) (tunnel.Assignment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.pending[remote]; ok {
		h.release(old)
		delete(h.pending, remote)
	}
	i4, ok := h.pool4.Get()
	if !ok {
		return tunnel.Assignment{}, errPoolExhausted
	}
	p := addrPair{v4: h.addr4(i4)}
	asg := tunnel.Assignment{
		Addresses: []netip.Prefix{netip.PrefixFrom(p.v4, h.network.Bits())},
		Gateway:   h.gateway,
		Routes:    h.routes,
	}
	if h.network6.IsValid() {
		i6, ok := h.pool6.Get()
		if !ok {
			h.pool4.Put(i4)
			return tunnel.Assignment{}, errPoolExhausted
		}
		p.v6 = h.addr6(i6)
		asg.Addresses = append(asg.Addresses, netip.PrefixFrom(p.v6, h.network6.Bits()))
		asg.Gateway6 = h.gateway6
	}
	h.pending[remote] = p
	return asg, nil
}

// release gives a client's addresses back to the pools; h.mu is held.
func (h *hub) release(p addrPair) {
	h.pool4.Put(h.offset4(p.v4))
	if p.v6.IsValid() {
		h.pool6.Put(uint32(offset6(h.first6, p.v6)))
	}
}

func (h *hub) Up(s tunnel.Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.pending[s.Remote()]
	if !ok {
		return
	}
	delete(h.pending, s.Remote())
	h.byAddr[p.v4] = s
	if p.v6.IsValid() {
		h.byAddr[p.v6] = s
	}
	h.addrOf[s.ID()] = p
}

func (h *hub) Down(s tunnel.Session, _ error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.addrOf[s.ID()]; ok {
		delete(h.addrOf, s.ID())
		for _, a := range [2]netip.Addr{p.v4, p.v6} {
			if a.IsValid() && h.byAddr[a] == s {
				delete(h.byAddr, a)
			}
		}
		h.release(p)
	}
}

// Deliver routes packets from a client: to another client (client-to-client)
// or to the TUN device. Packets whose source is not the client's address are
// dropped (anti-spoofing).
func (h *hub) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	h.mu.RLock()
	own := h.addrOf[from.ID()]
	// tunMu also guards the scratch batches, so that the per-packet path
	// does not allocate.
	h.tunMu.Lock()
	batch := h.tunBatch[:0]
	for i, b := range bufs {
		pkt := b[offset : offset+sizes[i]]
		ps, pd, ok := ipAddrs(pkt)
		if !ok || (ps != own.v4 && ps != own.v6) {
			continue
		}
		if h.c2c {
			if to := h.byAddr[pd]; to != nil {
				h.one[0] = b[:offset+sizes[i]]
				_, _ = to.Send(h.one[:], offset)
				continue
			}
		}
		if h.tun != nil {
			batch = append(batch, b[:offset+sizes[i]])
		}
	}
	h.mu.RUnlock()
	if len(batch) > 0 {
		_, _ = h.tun.Write(batch, offset)
	}
	h.tunBatch = batch[:0]
	h.tunMu.Unlock()
}

// fromTUN sends packets read from the TUN device to their clients.
func (h *hub) fromTUN(ctx context.Context) error {
	buf := make([]byte, tunnel.BufferSize)
	bufs := [][]byte{buf}
	out := [][]byte{nil}
	sizes := []int{0}
	for ctx.Err() == nil {
		n, err := h.tun.Read(bufs, sizes, tunnel.Headroom)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		pkt := buf[tunnel.Headroom : tunnel.Headroom+sizes[0]]
		_, dst, ok := ipAddrs(pkt)
		if !ok {
			continue
		}
		h.mu.RLock()
		to := h.byAddr[dst]
		h.mu.RUnlock()
		if to != nil {
			out[0] = buf[:tunnel.Headroom+sizes[0]]
			_, _ = to.Send(out, tunnel.Headroom)
		}
	}
	return ctx.Err()
}

// ipAddrs reads the source and destination of an IPv4 or IPv6 packet.
func ipAddrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}
