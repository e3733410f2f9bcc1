package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"

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

	mu      sync.RWMutex
	used    map[netip.Addr]bool
	pending map[netip.AddrPort]addrPair
	byAddr  map[netip.Addr]tunnel.Session
	addrOf  map[uint64]addrPair

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
		used:    map[netip.Addr]bool{},
		pending: map[netip.AddrPort]addrPair{},
		byAddr:  map[netip.Addr]tunnel.Session{},
		addrOf:  map[uint64]addrPair{},
	}
	if network6.IsValid() {
		h.network6 = network6.Masked()
		h.gateway6 = h.network6.Addr().Next()
	}
	return h
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
		delete(h.used, old.v4)
		delete(h.used, old.v6)
	}
	var p addrPair
	for a := h.gateway.Next(); h.network.Contains(a); a = a.Next() {
		if !h.used[a] && h.network.Contains(a.Next()) { // skip the broadcast address
			p.v4 = a
			break
		}
	}
	if !p.v4.IsValid() {
		return tunnel.Assignment{}, errPoolExhausted
	}
	asg := tunnel.Assignment{
		Addresses: []netip.Prefix{netip.PrefixFrom(p.v4, h.network.Bits())},
		Gateway:   h.gateway,
		Routes:    h.routes,
	}
	if h.network6.IsValid() {
		for a := h.pool6Start(); h.network6.Contains(a); a = a.Next() {
			if !h.used[a] {
				p.v6 = a
				break
			}
		}
		if !p.v6.IsValid() {
			return tunnel.Assignment{}, errPoolExhausted
		}
		asg.Addresses = append(asg.Addresses, netip.PrefixFrom(p.v6, h.network6.Bits()))
		asg.Gateway6 = h.gateway6
		h.used[p.v6] = true
	}
	h.used[p.v4] = true
	h.pending[remote] = p
	return asg, nil
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
			if !a.IsValid() {
				continue
			}
			if h.byAddr[a] == s {
				delete(h.byAddr, a)
			}
			delete(h.used, a)
		}
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
