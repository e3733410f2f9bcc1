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
)

// TUN is a Linux TUN interface as a Device. It reads and writes one packet per
// system call; BatchSize is 1.
type TUN struct {
	ifce      *water.Interface
	mtu       int
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
}

// OpenTUN creates a TUN interface, assigns addresses and routes, and brings it
// up. Configuration uses the ip(8) command from iproute2, which must be on
// PATH; the process needs CAP_NET_ADMIN.
func OpenTUN(cfg TUNConfig) (*TUN, error) {
	params := water.Config{DeviceType: water.TUN}
	params.Name = cfg.Name
	ifce, err := water.New(params)
	if err != nil {
		return nil, fmt.Errorf("tunnel: open TUN %q: %w", cfg.Name, err)
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
	}
	t := &TUN{ifce: ifce, mtu: mtu}
	name := ifce.Name()
	cmds := [][]string{{"link", "set", "dev", name, "mtu", strconv.Itoa(mtu)}}
	for _, a := range cfg.Addresses {
		cmds = append(cmds, []string{"addr", "add", a.String(), "dev", name})
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

func runIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tunnel: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Name is the interface name.
func (t *TUN) Name() string { return t.ifce.Name() }

// Read reads one packet into bufs[0][offset:].
func (t *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	n, err := t.ifce.Read(bufs[0][offset:])
	if err != nil {
		if errors.Is(err, os.ErrClosed) || t.closed() {
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("tunnel: read %s: %w", t.Name(), err)
	}
	sizes[0] = n
	return 1, nil
}

// Write writes each bufs[i][offset:] as one packet.
func (t *TUN) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := t.ifce.Write(b[offset:]); err != nil {
			if t.closed() {
				return i, ErrClosed
			}
			return i, fmt.Errorf("tunnel: write %s: %w", t.Name(), err)
		}
	}
	return len(bufs), nil
}

// BatchSize is 1: water reads one packet per call.
func (t *TUN) BatchSize() int { return 1 }

// MTU is the interface MTU set at open.
func (t *TUN) MTU() int { return t.mtu }

// Close closes the interface; the kernel removes it with its addresses and
// routes.
func (t *TUN) Close() error {
	t.closeOnce.Do(func() {
		t.isClosed.Store(true)
		t.closeErr = t.ifce.Close()
	})
	return t.closeErr
}

func (t *TUN) closed() bool { return t.isClosed.Load() }
