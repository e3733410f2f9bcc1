package tunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/packet"
)

// childEnv marks the test binary re-executed inside a namespace: the TUN
// interface and the TCP connection through it must live in a namespace the
// test made, and the simplest way to put this process's sockets there is to
// run it there.
const childEnv = "RG_TUNNEL_NETNS_CHILD"

// TestTUNCarriesTCP moves 16 MiB over a real kernel TCP connection that runs
// through a TUN interface, with and without offload, over IPv4 and IPv6. A
// loop in the test reads each packet from the TUN, rewrites its addresses so
// that it comes back to the other socket, and writes batches back: with
// offload the writes merge segments (GRO), and the receiving socket must see
// exactly the bytes sent, while the kernel takes far fewer, larger packets.
func TestTUNCarriesTCP(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		tunChild(t)
		return
	}
	if testing.Short() {
		t.Skip("namespace test; skipped in -short")
	}
	netns.Require(t, netns.TUN)
	ns := netns.New(t, "rgtun")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := ns.Command(ctx, os.Args[0], "-test.run=^TestTUNCarriesTCP$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inside %s:\n%s", ns.Name, out)
	if err != nil {
		t.Fatalf("test inside the namespace failed: %v", err)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestTUNCarriesTCP")) {
		t.Fatal("the test inside the namespace did not pass")
	}
}

func tunChild(t *testing.T) {
	for i, c := range []struct {
		name    string
		local   netip.Prefix // the TUN's address; both sockets use it
		peer    netip.Addr   // what the client dials, routed into the TUN
		mirror  netip.Addr   // where the server sees the client
		route   netip.Prefix
		offload bool
	}{
		{"ipv4/offload", netip.MustParsePrefix("10.77.0.1/24"), netip.MustParseAddr("10.77.1.1"), netip.MustParseAddr("10.77.1.2"), netip.MustParsePrefix("10.77.1.0/24"), true},
		{"ipv6/offload", netip.MustParsePrefix("fd00:77::1/64"), netip.MustParseAddr("fd00:77:1::1"), netip.MustParseAddr("fd00:77:1::2"), netip.MustParsePrefix("fd00:77:1::/64"), true},
		{"ipv4/plain", netip.MustParsePrefix("10.77.0.1/24"), netip.MustParseAddr("10.77.1.1"), netip.MustParseAddr("10.77.1.2"), netip.MustParsePrefix("10.77.1.0/24"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tun, err := OpenTUN(TUNConfig{
				Name:           fmt.Sprintf("rgt%d", i),
				Addresses:      []netip.Prefix{c.local},
				Routes:         []netip.Prefix{c.route},
				DisableOffload: !c.offload,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer tun.Close()
			if tun.Offload() != c.offload {
				t.Fatalf("Offload() = %v, want %v", tun.Offload(), c.offload)
			}
			if c.local.Addr().Is6() {
				// The address must be usable at once, not tentative until
				// the kernel's DAD worker gets to run (see OpenTUN).
				flags := ifaFlags(t, tun.Name(), c.local.Addr())
				if flags&unix.IFA_F_NODAD == 0 || flags&unix.IFA_F_TENTATIVE != 0 {
					t.Fatalf("%s on %s has flags %#x, want nodad and not tentative", c.local.Addr(), tun.Name(), flags)
				}
			}
			done := make(chan error, 1)
			go func() { done <- mirrorLoop(tun, c.local.Addr(), c.peer, c.mirror) }()
			transferThrough(t, c.local.Addr(), c.peer)
			_ = tun.Close()
			if err := <-done; !errors.Is(err, ErrClosed) {
				t.Fatalf("mirror loop ended with %v, want ErrClosed", err)
			}
			pkt := make([]byte, Headroom+40)
			pkt[Headroom] = 0x45
			if _, err := tun.Write([][]byte{pkt}, Headroom); !errors.Is(err, ErrClosed) {
				t.Fatalf("Write after Close: %v, want ErrClosed", err)
			}
			if _, err := tun.Read([][]byte{make([]byte, BufferSize)}, []int{0}, Headroom); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v, want ErrClosed", err)
			}
			if c.offload {
				st := tun.Stats()
				w, p := st.Writes, st.PacketsWritten
				t.Logf("%d packets in %d writes", p, w)
				if p < 2*w {
					t.Fatalf("%d packets went out in %d writes: offload merged too little", p, w)
				}
			}
		})
	}
}

// ifaFlags returns the IFA_F_* flags of the IPv6 address addr on the
// interface dev, from /proc/net/if_inet6.
func ifaFlags(t *testing.T, dev string, addr netip.Addr) uint32 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/if_inet6")
	if err != nil {
		t.Fatal(err)
	}
	a := addr.As16()
	want := hex.EncodeToString(a[:])
	// Each line: address, ifindex, prefix length, scope, flags (all hex),
	// interface name.
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[0] == want && f[5] == dev {
			flags, err := strconv.ParseUint(f[4], 16, 32)
			if err != nil {
				t.Fatalf("/proc/net/if_inet6 line %q: %v", line, err)
			}
			return uint32(flags)
		}
	}
	t.Fatalf("%s not on %s in /proc/net/if_inet6:\n%s", addr, dev, b)
	return 0
}

// transferThrough sends 16 MiB from a client dialling peer to a server
// listening on local, and compares digests.
func transferThrough(t *testing.T, local, peer netip.Addr) {
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	const size = 16 << 20
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, _ := io.Copy(h, c)
		if n != size {
			got <- [32]byte{}
			return
		}
		got <- [32]byte(h.Sum(nil))
	}()
	conn, err := net.DialTimeout("tcp", netip.AddrPortFrom(peer, uint16(port)).String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	r := rand.New(rand.NewPCG(7, 7))
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		for i := 0; i+8 <= len(chunk); i += 8 {
			binary.LittleEndian.PutUint64(chunk[i:], r.Uint64())
		}
		h.Write(chunk)
		if _, err := conn.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	select {
	case sum := <-got:
		if sum != [32]byte(h.Sum(nil)) {
			t.Fatal("the server received other bytes than the client sent")
		}
	case <-time.After(90 * time.Second):
		t.Fatal("transfer did not finish")
	}
	conn.Close()
}

// mirrorLoop reads packets from the TUN and sends them back rewritten: a
// packet to peer comes back from mirror to local, and a packet to mirror
// comes back from peer to local, so that a client on local talking to peer
// reaches a server on local that sees the client as mirror. Packets are
// written in batches gathered for up to a millisecond, as a transport
// delivers them.
func mirrorLoop(tun *TUN, local, peer, mirror netip.Addr) error {
	ch := make(chan []byte, 256)
	readErr := make(chan error, 1)
	go func() {
		sizes := []int{0}
		for {
			buf := make([]byte, BufferSize)
			if _, err := tun.Read([][]byte{buf}, sizes, Headroom); err != nil {
				readErr <- err
				close(ch)
				return
			}
			pkt := buf[Headroom : Headroom+sizes[0]]
			if rewrite(pkt, local, peer, mirror) {
				ch <- buf[:Headroom+sizes[0]]
			}
		}
	}()
	var batch [][]byte
	for {
		b, ok := <-ch
		if !ok {
			return <-readErr
		}
		batch = append(batch[:0], b)
		deadline := time.After(time.Millisecond)
	gather:
		for len(batch) < 64 {
			select {
			case b, ok := <-ch:
				if !ok {
					break gather
				}
				batch = append(batch, b)
			case <-deadline:
				break gather
			}
		}
		if _, err := tun.Write(batch, Headroom); err != nil {
			return err
		}
	}
}

// rewrite turns local->peer into mirror->local and local->mirror into
// peer->local, fixing the IP and TCP checksums. It reports false for
// packets it does not handle.
func rewrite(pkt []byte, local, peer, mirror netip.Addr) bool {
	var src, dst []byte
	var l4 []byte
	switch {
	case len(pkt) >= 40 && pkt[0]>>4 == 4 && pkt[9] == ipProtoTCP:
		ihl := int(pkt[0]&0x0f) * 4
		src, dst, l4 = pkt[12:16], pkt[16:20], pkt[ihl:]
	case len(pkt) >= 60 && pkt[0]>>4 == 6 && pkt[6] == ipProtoTCP:
		src, dst, l4 = pkt[8:24], pkt[24:40], pkt[40:]
	default:
		return false
	}
	d, _ := netip.AddrFromSlice(dst)
	switch d {
	case peer:
		copy(src, mirror.AsSlice())
	case mirror:
		copy(src, peer.AsSlice())
	default:
		return false
	}
	copy(dst, local.AsSlice())
	if pkt[0]>>4 == 4 {
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], packet.Checksum(pkt[:int(pkt[0]&0x0f)*4], 0))
	}
	l4[16], l4[17] = 0, 0
	binary.BigEndian.PutUint16(l4[16:], packet.Checksum(l4, packet.PseudoHeaderSum(ipProtoTCP, src, dst, len(l4))))
	return true
}
