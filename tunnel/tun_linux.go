package tunnel

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"github.com/remotegate/remotegate/internal/rawio"
)

// TUN is a Linux TUN interface as a Device. It reads one packet per system
// call; BatchSize is 1.
//
// Unless TUNConfig.DisableOffload is set, the interface is opened with a
// virtio-net header in front of each packet (IFF_VNET_HDR), and Write merges
// consecutive TCP segments of one flow into one large packet that the kernel
// takes in one system call and processes as one (GRO, as a NIC driver does
// it): the kernel's per-packet cost, not encryption, limits a VPN server's
// throughput. Without offload, TUN uses songgao/water and writes one packet
// per system call.
type TUN struct {
	ifce      *water.Interface // without offload
	file      *os.File         // with offload (IFF_VNET_HDR)
	raw       *rawio.Conn      // reads and writes file (see package rawio for why)
	name      string
	mtu       int
	gro       *coalescer // Write's scratch; Write is not called concurrently
	readBuf   []byte     // Read's scratch, for offsets below vnetHdrLen
	closeOnce sync.Once
	closeErr  error
	isClosed  atomic.Bool
}

// TUNConfig says how to open and configure a TUN interface.
type TUNConfig struct {
	// Name is the interface name; empty lets the kernel choose (tun0, tun1, ...).
	Name string
	// MTU of the interface; zero means 1500.
	MTU int
	// Addresses are assigned to the interface, with their prefix lengths.
	Addresses []netip.Prefix
	// Routes are added through the interface.
	Routes []netip.Prefix
	// DisableOffload opens the interface without the virtio-net header, so
	// that every packet is written with its own system call. The zero value
	// enables offload, and falls back to no offload when the kernel refuses
	// it.
	DisableOffload bool
}

// OpenTUN creates a TUN interface, assigns addresses and routes, and brings it
// up. Configuration uses the ip(8) command from iproute2, which must be on
// PATH; the process needs CAP_NET_ADMIN.
func OpenTUN(cfg TUNConfig) (*TUN, error) {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
	}
	t := &TUN{mtu: mtu}
	if !cfg.DisableOffload {
		if f, name, err := openVnetTUN(cfg.Name); err == nil {
			raw, err := rawio.New(f)
			if err != nil {
				_ = f.Close()
				return nil, fmt.Errorf("tunnel: TUN %q: %w", name, err)
			}
			t.file, t.raw, t.name = f, raw, name
			t.gro = newCoalescer()
			t.readBuf = make([]byte, vnetHdrLen+maxCoalesced)
		}
	}
	if t.file == nil {
		params := water.Config{DeviceType: water.TUN}
		params.Name = cfg.Name
		ifce, err := water.New(params)
		if err != nil {
			return nil, fmt.Errorf("tunnel: open TUN %q: %w", cfg.Name, err)
		}
		t.ifce, t.name = ifce, ifce.Name()
	}
	name := t.name
	cmds := [][]string{{"link", "set", "dev", name, "mtu", strconv.Itoa(mtu)}}
	for _, a := range cfg.Addresses {
		c := []string{"addr", "add", a.String(), "dev", name}
		if a.Addr().Is6() {
			// nodad: without it the kernel marks the address tentative
			// (IFA_F_TENTATIVE) when ip(8) adds it, and clears the flag
			// only when its ipv6_addrconf worker runs Duplicate Address
			// Detection. On a TUN (point-to-point, IFF_NOARP) DAD sends
			// nothing and ends at once, as there are no neighbours to
			// collide with; accept_dad does not change that. But the worker
			// runs asynchronously, so under load OpenTUN could return
			// while the address was still tentative, and a bind to it or a
			// connect that needs it as source failed with EADDRNOTAVAIL
			// ("cannot assign requested address"). With nodad the address
			// is never tentative: usable as soon as ip(8) returns.
			c = append(c, "nodad")
		}
		cmds = append(cmds, c)
	}
	cmds = append(cmds, []string{"link", "set", "dev", name, "up"})
	for _, r := range cfg.Routes {
		cmds = append(cmds, []string{"route", "replace", r.Masked().String(), "dev", name})
	}
	for _, c := range cmds {
		if err := runIP(c...); err != nil {
			_ = t.Close()
			return nil, err
		}
	}
	return t, nil
}

// AddRoute routes prefix through the interface.
func (t *TUN) AddRoute(prefix netip.Prefix) error {
	return runIP("route", "replace", prefix.Masked().String(), "dev", t.Name())
}

// openVnetTUN opens a TUN interface with a virtio-net header in front of
// every packet. songgao/water has no way to ask for IFF_VNET_HDR, hence the
// direct ioctl. The kernel's offload features for packets it hands to us
// (TUNSETOFFLOAD) stay off, so reads are whole packets with checksums done.
func openVnetTUN(name string) (*os.File, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", fmt.Errorf("tunnel: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return nil, "", fmt.Errorf("tunnel: TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return nil, "", fmt.Errorf("tunnel: TUNSETIFF %q: %w", name, err)
	}
	// A non-blocking descriptor makes the file use the runtime's poller,
	// so that Close unblocks a pending Read.
	return os.NewFile(uintptr(fd), "/dev/net/tun"), ifr.Name(), nil
}

func runIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tunnel: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Name is the interface name.
func (t *TUN) Name() string { return t.name }

// Offload reports whether the interface was opened with the virtio-net
// header, so that Write merges TCP segments.
func (t *TUN) Offload() bool { return t.file != nil }

// Read reads one packet into bufs[0][offset:]. With offload, the
// vnetHdrLen bytes before offset are overwritten.
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	if t.file == nil {
		n, err := t.ifce.Read(bufs[0][offset:])
		if err != nil {
			return 0, t.readErr(err)
		}
		sizes[0] = n
		return 1, nil
	}
	for {
		dst := t.readBuf
		if offset >= vnetHdrLen {
			dst = bufs[0][offset-vnetHdrLen:]
		}
		n, err := t.raw.Read(dst)
		if err != nil {
			return 0, t.readErr(err)
		}
		if n < vnetHdrLen {
			continue
		}
		h := parseVnetHdr(dst)
		pkt := dst[vnetHdrLen:n]
		// Offloads for reads are off, so the kernel segments and checksums
		// before handing packets over; these checks are defensive.
		if h.gsoType != vnetGSONone {
			continue
		}
		if h.flags&vnetFlagNeedsCsum != 0 && !completeChecksum(pkt, h) {
			continue
		}
		if offset < vnetHdrLen {
			if len(pkt) > len(bufs[0])-offset {
				continue
			}
			copy(bufs[0][offset:], pkt)
		}
		sizes[0] = len(pkt)
		return 1, nil
	}
}

func (t *TUN) readErr(err error) error {
	if errors.Is(err, os.ErrClosed) || t.closed() {
		return ErrClosed
	}
	return fmt.Errorf("tunnel: read %s: %w", t.name, err)
}

// Write writes each bufs[i][offset:] as one packet. With offload, runs of
// TCP segments are merged, and the vnetHdrLen bytes before offset of a packet
// written alone are overwritten with its virtio-net header.
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.file == nil {
		for i, b := range bufs {
			if _, err := t.ifce.Write(b[offset:]); err != nil {
				return i, t.writeErr(err)
			}
		}
		return len(bufs), nil
	}
	for i := 0; i < len(bufs); {
		out, n := t.gro.next(bufs[i:], offset)
		if _, err := t.raw.Write(out); err != nil {
			return i, t.writeErr(err)
		}
		i += n
	}
	return len(bufs), nil
}

func (t *TUN) writeErr(err error) error {
	if t.closed() {
		return ErrClosed
	}
	return fmt.Errorf("tunnel: write %s: %w", t.name, err)
}

// TUNStats counts what a TUN device wrote.
type TUNStats struct {
	// PacketsWritten is the number of packets passed to Write and written.
	PacketsWritten uint64
	// Writes is the number of system calls that wrote them; with offload,
	// PacketsWritten/Writes is how many TCP segments were merged on average.
	Writes uint64
}

// Stats returns the counters; it is safe to call at any time. Without
// offload it reports zeros.
func (t *TUN) Stats() TUNStats {
	if t.gro == nil {
		return TUNStats{}
	}
	return TUNStats{PacketsWritten: t.gro.packets.Load(), Writes: t.gro.writes.Load()}
}

// BatchSize is 1: one packet per read.
func (t *TUN) BatchSize() int { return 1 }

// MTU is the interface MTU set at open.
func (t *TUN) MTU() int { return t.mtu }

// Close closes the interface; the kernel removes it with its addresses and
// routes.
func (t *TUN) Close() error {
	t.closeOnce.Do(func() {
		t.isClosed.Store(true)
		if t.file != nil {
			t.closeErr = t.file.Close()
		} else {
			t.closeErr = t.ifce.Close()
		}
	})
	return t.closeErr
}

func (t *TUN) closed() bool { return t.isClosed.Load() }
