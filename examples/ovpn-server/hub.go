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
	routes  []netip.Prefix
	c2c     bool
	tun     tunnel.Device // nil: no TUN (relay only)

	mu      sync.RWMutex
	used    map[netip.Addr]bool
	pending map[netip.AddrPort]netip.Addr
	byAddr  map[netip.Addr]tunnel.Session
	addrOf  map[uint64]netip.Addr

	tunMu    sync.Mutex
	tunBatch [][]byte
	one      [1][]byte
}

var errPoolExhausted = errors.New("address pool exhausted")

func newHub(network netip.Prefix, routes []netip.Prefix, c2c bool, tun tunnel.Device) *hub {
	network = network.Masked()
	return &hub{
		network: network,
		gateway: network.Addr().Next(),
		routes:  routes,
		c2c:     c2c,
		tun:     tun,
		used:    map[netip.Addr]bool{},
		pending: map[netip.AddrPort]netip.Addr{},
		byAddr:  map[netip.Addr]tunnel.Session{},
		addrOf:  map[uint64]netip.Addr{},
	}
}

// Admit gives the client the lowest free address after the gateway.
func (h *hub) Admit(_ context.Context, _ tunnel.Identity, remote netip.AddrPort) (tunnel.Assignment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.pending[remote]; ok {
		delete(h.used, old)
	}
	for a := h.gateway.Next(); h.network.Contains(a); a = a.Next() {
		if h.used[a] || !h.network.Contains(a.Next()) { // skip the broadcast address
			continue
		}
		h.used[a] = true
		h.pending[remote] = a
		return tunnel.Assignment{
			Addresses: []netip.Prefix{netip.PrefixFrom(a, h.network.Bits())},
			Gateway:   h.gateway,
			Routes:    h.routes,
		}, nil
	}
	return tunnel.Assignment{}, errPoolExhausted
}

func (h *hub) Up(s tunnel.Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.pending[s.Remote()]
	if !ok {
		return
	}
	delete(h.pending, s.Remote())
	h.byAddr[a] = s
	h.addrOf[s.ID()] = a
}

func (h *hub) Down(s tunnel.Session, _ error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.addrOf[s.ID()]; ok {
		delete(h.addrOf, s.ID())
		if h.byAddr[a] == s {
			delete(h.byAddr, a)
		}
		delete(h.used, a)
	}
}

// Deliver routes packets from a client: to another client (client-to-client)
// or to the TUN device. Packets whose source is not the client's address are
// dropped (anti-spoofing).
func (h *hub) Deliver(from tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	h.mu.RLock()
	src := h.addrOf[from.ID()]
	// tunMu also guards the scratch batches, so that the per-packet path
	// does not allocate.
	h.tunMu.Lock()
	batch := h.tunBatch[:0]
	for i, b := range bufs {
		pkt := b[offset : offset+sizes[i]]
		ps, pd, ok := ipv4Addrs(pkt)
		if !ok || ps != src {
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
		_, dst, ok := ipv4Addrs(pkt)
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

func ipv4Addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return src, dst, false
	}
	return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
}
