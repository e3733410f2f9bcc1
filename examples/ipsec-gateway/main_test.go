package main

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/netns"
	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
)

// build compiles the gateway into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the gateway: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ipsec-gateway")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The gateway in namespace I connects site to site to a strongSwan
// responder in R; a host in namespace H on the gateway's LAN reaches the
// network behind the responder through it. When strongSwan deletes the
// IKE SA, the gateway reconnects; on SIGTERM it deletes the IKE SA and
// exits with status 0.
func TestGatewayAgainstStrongSwan(t *testing.T) {
	swaninterop.Require(t, "ping")
	bin := build(t)
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.SiteToSite, KeyType: swaninterop.ECDSAP256})
	// The LAN moves from I's lo to a link to the host namespace H.
	l.I.Run(t, 5*time.Second, "ip", "addr", "del", swaninterop.InitiatorNet.String(), "dev", "lo")
	h := netns.New(t, "gwH")
	host := netip.PrefixFrom(swaninterop.InitiatorNet.Addr().Next(), swaninterop.InitiatorNet.Bits())
	netns.Link(t, l.I, swaninterop.InitiatorNet, h, host)
	h.Run(t, 5*time.Second, "ip", "route", "add", "default", "via", swaninterop.InitiatorNet.Addr().String())
	l.I.Run(t, 5*time.Second, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")

	resp := l.StartResponder(t, swaninterop.Options{})
	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": l.CA.CertPEM, "gw.pem": l.InitiatorLeaf.CertPEM, "gw.key": l.InitiatorLeaf.KeyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := l.I.Start(t, bin,
		"-server", swaninterop.ResponderAddr.Addr().String(),
		"-remote-id", swaninterop.ResponderID,
		"-cert", filepath.Join(dir, "gw.pem"), "-key", filepath.Join(dir, "gw.key"), "-ca", filepath.Join(dir, "ca.pem"),
		"-lan", swaninterop.InitiatorNet.Masked().String(),
		"-remote-ts", swaninterop.ResponderNet.Masked().String(),
		"-tun", "rggw0", "-max-backoff", "2s")
	gw.WaitLog(t, `msg="tunnel up"`, 10*time.Second)
	if got := h.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings from the LAN host through the gateway answered\n%s", got, resp.ListSAs(t))
	}
	if got := l.I.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings from the gateway itself answered", got)
	}
	sas := resp.ListSAs(t)
	if !strings.Contains(sas, "TUNNEL-in-UDP") || !strings.Contains(sas, "remote "+swaninterop.InitiatorNet.Masked().String()) {
		t.Fatalf("strongSwan's SAs:\n%s", sas)
	}

	// strongSwan ends the IKE SA: the gateway notices and comes back.
	if out, err := resp.Swanctl(10*time.Second, "--terminate", "--ike", swaninterop.ConnName); err != nil {
		t.Fatalf("swanctl --terminate: %v\n%s", err, out)
	}
	gw.WaitLog(t, `(?s)tunnel down; reconnecting.*msg="tunnel up"`, 10*time.Second)
	if got := h.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("after the reconnect: %d of 3 pings answered", got)
	}

	// SIGTERM: Delete, status 0.
	if err := gw.Stop(); err != nil {
		t.Fatalf("the gateway's exit after SIGTERM: %v\n%s", err, gw.Log())
	}
	resp.WaitLog(t, `received DELETE for IKE_SA `+swaninterop.ConnName, 5*time.Second)
	if sas := resp.ListSAs(t); strings.Contains(sas, swaninterop.ConnName+":") {
		t.Errorf("strongSwan still has an IKE SA after the gateway's Delete:\n%s", sas)
	}
	t.Logf("gateway log:\n%s", gw.Log())
}

// As a road warrior with a pre-shared key: the TUN gets the virtual
// address from strongSwan's pool, which the gateway's own pings use.
func TestGatewayRoadWarriorPSK(t *testing.T) {
	swaninterop.Require(t, "ping")
	bin := build(t)
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, PSK: "the lab's pre-shared key"})
	resp := l.StartResponder(t, swaninterop.Options{})
	psk := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(psk, []byte(l.PSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := l.I.Start(t, bin, "-server", swaninterop.ResponderAddr.Addr().String()+":4500", "-listen", swaninterop.InitiatorAddr.Addr().String()+":4500",
		"-id", swaninterop.InitiatorID, "-remote-id", swaninterop.ResponderID, "-psk-file", psk, "-tun", "rggw0")
	gw.WaitLog(t, `msg="tunnel up".*addresses=\[`+swaninterop.FirstVIP.String()+`/32\]`, 10*time.Second)
	if got := l.I.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings from the gateway's virtual address answered\n%s", got, resp.ListSAs(t))
	}
	if sas := resp.ListSAs(t); !strings.Contains(sas, "remote "+swaninterop.FirstVIP.String()+"/32") {
		t.Errorf("strongSwan's SAs:\n%s", sas)
	}
	if err := gw.Stop(); err != nil {
		t.Fatalf("the gateway's exit after SIGTERM: %v\n%s", err, gw.Log())
	}
	resp.WaitLog(t, `received DELETE for IKE_SA `+swaninterop.ConnName, 5*time.Second)
}

// A road warrior over IPv6 outer addresses that reaches IPv4 and IPv6
// networks: the gateway asks for virtual addresses of both families
// (-remote-ts has an IPv6 prefix), gives them to its TUN, routes each
// family from its own address, and pings of both families pass.
func TestGatewayRoadWarriorIPv6(t *testing.T) {
	swaninterop.Require(t, "ping")
	bin := build(t)
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, PSK: "the lab's pre-shared key"})
	ini6, resp6, net6 := netip.MustParsePrefix("fd00:231::1/64"), netip.MustParsePrefix("fd00:231::2/64"), netip.MustParsePrefix("fd00:232::1/64")
	l.I.Run(t, 5*time.Second, "ip", "addr", "add", ini6.String(), "dev", l.IIf)
	l.R.Run(t, 5*time.Second, "ip", "addr", "add", resp6.String(), "dev", l.RIf)
	l.R.Run(t, 5*time.Second, "ip", "addr", "add", net6.String(), "dev", "lo")
	resp := swaninterop.Start(t, l.R, swaninterop.Options{})
	conn := l.ResponderConn()
	conn.LocalAddr = resp6.Addr().String()
	conn.LocalTS = swaninterop.ResponderNet.Masked().String() + ", " + net6.Masked().String()
	conn.Pools = append(conn.Pools, swaninterop.Pool{Name: "rw6", Addrs: "fd00:233::/120"})
	resp.Load(t, conn.String())
	psk := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(psk, []byte(l.PSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := l.I.Start(t, bin, "-server", "["+resp6.Addr().String()+"]", "-id", swaninterop.InitiatorID, "-psk-file", psk, "-tun", "rggw0",
		"-remote-ts", swaninterop.ResponderNet.Masked().String()+","+net6.Masked().String())
	gw.WaitLog(t, `msg="tunnel up".* remote=\[`+resp6.Addr().String()+`\]:4500 .*addresses="\[`+swaninterop.FirstVIP.String()+`/32 fd00:233::1/128\]"`, 10*time.Second)
	for _, target := range []netip.Addr{net6.Addr(), l.Target()} {
		if got := l.I.Ping(t, target, 3); got != 3 {
			t.Fatalf("%d of 3 pings to %v answered\n%s\n%s", got, target, resp.ListSAs(t), gw.Log())
		}
	}
	if err := gw.Stop(); err != nil {
		t.Fatalf("the gateway's exit after SIGTERM: %v\n%s", err, gw.Log())
	}
}

// -ike and -esp in strongSwan's syntax: a strongSwan responder that
// takes exactly one proposal each gets it from the gateway.
func TestGatewayProposals(t *testing.T) {
	swaninterop.Require(t, "ping")
	bin := build(t)
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, PSK: "the lab's pre-shared key"})
	resp := l.StartResponder(t, swaninterop.Options{})
	conn := l.ResponderConn()
	conn.Proposals, conn.ESPProposals = []string{"aes192-sha384-modp3072"}, []string{"aes128-sha512-modp2048"}
	resp.Load(t, conn.String())
	psk := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(psk, []byte(l.PSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := l.I.Start(t, bin, "-server", swaninterop.ResponderAddr.Addr().String(), "-id", swaninterop.InitiatorID, "-psk-file", psk, "-tun", "rggw0",
		"-ike", "aes256gcm16-prfsha384-ecp384, aes192-sha384-modp3072", "-esp", "aes256gcm16,aes128-sha512-modp2048")
	gw.WaitLog(t, `msg="tunnel up".* ike=aes192-sha384-prfsha384-modp3072 esp=aes128-sha512`, 10*time.Second)
	if got := l.I.Ping(t, l.Target(), 3); got != 3 {
		t.Fatalf("%d of 3 pings answered\n%s", got, resp.ListSAs(t))
	}
	if sas := resp.ListSAs(t); !strings.Contains(sas, "AES_CBC-192/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/MODP_3072") || !strings.Contains(sas, "AES_CBC-128/HMAC_SHA2_512_256") {
		t.Errorf("strongSwan's SAs:\n%s", sas)
	}
	if err := gw.Stop(); err != nil {
		t.Fatalf("the gateway's exit after SIGTERM: %v\n%s", err, gw.Log())
	}
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	psk := filepath.Join(dir, "psk")
	if err := os.WriteFile(psk, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := options{server: "192.0.2.1", pskFile: psk, id: "gw.example", remoteTS: "10.0.0.0/8"}
	cfg, err := o.dialConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.PSK) != "secret" || !cfg.RequestAddress || cfg.LocalID.String() != "gw.example" || len(cfg.RemoteTS) != 1 {
		t.Errorf("config %+v", cfg)
	}
	if cfg.RequestAddress6 {
		t.Error("an IPv6 address asked for without IPv6 destinations")
	}
	o6 := o
	o6.remoteTS = "10.0.0.0/8,fd00::/8"
	if cfg6, err := o6.dialConfig(nil); err != nil || !cfg6.RequestAddress || !cfg6.RequestAddress6 {
		t.Errorf("-remote-ts %s: no IPv6 virtual address asked for (%v)", o6.remoteTS, err)
	}
	if cfg.IKEProposals != nil || cfg.ESPProposals != nil {
		t.Errorf("proposals without -ike and -esp: %v %v", cfg.IKEProposals, cfg.ESPProposals)
	}
	o.ike, o.esp = "aes256gcm16-prfsha384-ecp384", "aes256gcm16,aes128-sha256"
	if cfg, err = o.dialConfig(nil); err != nil || len(cfg.IKEProposals) != 1 || len(cfg.ESPProposals) != 2 || cfg.IKEProposals[0].String() != o.ike {
		t.Errorf("-ike %s -esp %s: %v %v: %v", o.ike, o.esp, cfg.IKEProposals, cfg.ESPProposals, err)
	}
	for _, bad := range []options{{ike: "aes128-sha1-modp1024"}, {esp: "aes256gcm16-prfsha256"}} {
		o.ike, o.esp = bad.ike, bad.esp
		if _, err := o.dialConfig(nil); !errors.Is(err, ipsec.ErrProposal) {
			t.Errorf("-ike %q -esp %q: %v", bad.ike, bad.esp, err)
		}
	}
	o.ike, o.esp = "", ""
	o.lan, o.childPerLAN = "192.168.10.0/24,192.168.20.0/24", true
	if cfg, err = o.dialConfig(nil); err != nil || len(cfg.LocalTS) != 1 || cfg.LocalTS[0].String() != "192.168.10.0/24" ||
		len(cfg.AdditionalChildren) != 1 || cfg.AdditionalChildren[0].LocalTS[0].String() != "192.168.20.0/24" || cfg.AdditionalChildren[0].RemoteTS[0].String() != "10.0.0.0/8" {
		t.Errorf("-child-per-lan -lan %s: %+v: %v", o.lan, cfg, err)
	}
	for _, bad := range []options{
		{},
		{server: "192.0.2.1", pskFile: psk, remoteTS: "0.0.0.0/0", childPerLAN: true},
		{server: "192.0.2.1"},
		{server: "192.0.2.1", pskFile: psk, remoteTS: "nonsense"},
		{server: "192.0.2.1", pskFile: psk, remoteTS: "0.0.0.0/0", lan: "10.0.0.0/33"},
		{server: "192.0.2.1", cert: "x.pem", remoteTS: "0.0.0.0/0"},
	} {
		if _, err := bad.dialConfig(nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if ap, err := resolve("192.0.2.1"); err != nil || ap.Port() != 4500 {
		t.Errorf("resolve: %v %v", ap, err)
	}
	if ap, err := resolve("[2001:db8::1]:500"); err != nil || ap.Port() != 500 || !ap.Addr().Is6() {
		t.Errorf("resolve: %v %v", ap, err)
	}
	for _, s := range []string{"[2001:db8::1]", "2001:db8::1"} {
		if ap, err := resolve(s); err != nil || ap != netip.MustParseAddrPort("[2001:db8::1]:4500") {
			t.Errorf("resolve(%q): %v %v", s, ap, err)
		}
	}
}
