package ipsecinterop

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/remotegate/remotegate/tunnel"
)

// hub is the Handler of the interop tests: it gives each peer an address
// of a pool and connects the sessions with a TUN device in the responder's
// namespace, whose kernel answers for the protected network.
type hub struct {
	tun  tunnel.Device
	pool netip.Prefix
	// pool6, when valid, gives each peer an IPv6 address too.
	pool6  netip.Prefix
	routes []netip.Prefix
	// networks are the LANs behind named peers (site to site).
	networks map[string][]netip.Prefix

	mu    sync.Mutex
	addrs map[string]netip.Addr
	next  netip.Addr
	byNet map[netip.Prefix]tunnel.Session
	ups   chan tunnel.Session
	downs chan error
}

func newHub(tun tunnel.Device, pool netip.Prefix, routes []netip.Prefix) *hub {
	return &hub{tun: tun, pool: pool, routes: routes, networks: map[string][]netip.Prefix{},
		addrs: map[string]netip.Addr{}, next: pool.Addr().Next(), byNet: map[netip.Prefix]tunnel.Session{},
		ups: make(chan tunnel.Session, 16), downs: make(chan error, 16)}
}

func (h *hub) Admit(_ context.Context, id tunnel.Identity, _ netip.AddrPort) (tunnel.Assignment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id.Name == "" {
		return tunnel.Assignment{}, errors.New("hub: no name")
	}
	a, ok := h.addrs[id.Name]
	if !ok {
		a = h.next
		h.next = h.next.Next()
		h.addrs[id.Name] = a
	}
	asg := tunnel.Assignment{Addresses: []netip.Prefix{netip.PrefixFrom(a, h.pool.Bits())}, Routes: h.routes, Networks: h.networks[id.Name]}
	if h.pool6.IsValid() {
		// The same host part as the IPv4 address.
		asg.Addresses = append(asg.Addresses, netip.PrefixFrom(h.sixOf(a), h.pool6.Bits()))
	}
	return asg, nil
}

// sixOf is the IPv6 address of the peer with the IPv4 address a: pool6's
// network with a's offset in pool.
func (h *hub) sixOf(a netip.Addr) netip.Addr {
	b, off := h.pool6.Addr().As16(), a.As4()
	base := h.pool.Addr().As4()
	n := (uint32(off[0])<<24 | uint32(off[1])<<16 | uint32(off[2])<<8 | uint32(off[3])) -
		(uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3]))
	b[12], b[13], b[14], b[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return netip.AddrFrom16(b)
}

func (h *hub) Up(s tunnel.Session) {
	h.mu.Lock()
	if a, ok := h.addrs[s.Identity().Name]; ok {
		h.byNet[netip.PrefixFrom(a, 32)] = s
		if h.pool6.IsValid() {
			h.byNet[netip.PrefixFrom(h.sixOf(a), 128)] = s
		}
	}
	for _, n := range h.networks[s.Identity().Name] {
		h.byNet[n] = s
	}
	h.mu.Unlock()
	h.ups <- s
}

func (h *hub) Down(s tunnel.Session, cause error) {
	h.mu.Lock()
	for p, x := range h.byNet {
		if x == s {
			delete(h.byNet, p)
		}
	}
	h.mu.Unlock()
	h.downs <- cause
}

func (h *hub) Deliver(_ tunnel.Session, bufs [][]byte, sizes []int, offset int) {
	pkts := make([][]byte, len(sizes))
	for i := range sizes {
		pkts[i] = bufs[i][:offset+sizes[i]]
	}
	_, _ = h.tun.Write(pkts, offset)
}

// route is the session behind dst.
func (h *hub) route(dst netip.Addr) tunnel.Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	for p, s := range h.byNet {
		if p.Contains(dst) {
			return s
		}
	}
	return nil
}

// pump reads the TUN and sends each packet to the session behind its
// destination, until the TUN is closed.
func (h *hub) pump() {
	n := h.tun.BatchSize()
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, tunnel.BufferSize)
	}
	for {
		k, err := h.tun.Read(bufs, sizes, tunnel.Headroom)
		if err != nil {
			return
		}
		for i := 0; i < k; i++ {
			pkt := bufs[i][tunnel.Headroom : tunnel.Headroom+sizes[i]]
			var dst netip.Addr
			switch {
			case len(pkt) >= 20 && pkt[0]>>4 == 4:
				dst = netip.AddrFrom4([4]byte(pkt[16:20]))
			case len(pkt) >= 40 && pkt[0]>>4 == 6:
				dst = netip.AddrFrom16([16]byte(pkt[24:40]))
			default:
				continue
			}
			if s := h.route(dst); s != nil {
				_, _ = s.Send([][]byte{bufs[i][:tunnel.Headroom+sizes[i]]}, tunnel.Headroom)
			}
		}
	}
}
