package ipsecinterop

import (
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/internal/swaninterop"
	"github.com/remotegate/remotegate/ipsec"
)

// matrixCase is one strongSwan configuration of the proposal matrix: one
// IKE and one ESP proposal in its syntax, and what both sides then agree
// on, in ipsec.Proposal's String form. An ESP proposal with a group (PFS)
// is exercised by a child rekey, the first CREATE_CHILD_SA with a key
// exchange.
type matrixCase struct {
	ike, esp         string
	wantIKE, wantESP string
	pfs              bool
}

// proposalMatrix covers every algorithm ParseIKEProposals and
// ParseESPProposals accept at least once: the ciphers AES-CBC 128, 192,
// 256, AES-GCM 128, 192, 256 and ChaCha20-Poly1305 in IKE and in ESP;
// HMAC-SHA2-256, -384, -512 as integrity (IKE and ESP) and as PRF (also
// one PRF other than the integrity's); the groups Curve25519, ECP-256,
// -384, -521, MODP-2048 and -3072 for the IKE SA and, as PFS groups, in
// child rekeys. The first two are the ones a strongSwan responder once
// refused our default offer for.
var proposalMatrix = []matrixCase{
	{"aes128-sha256-modp3072", "aes128-sha256-modp2048", "aes128-sha256-prfsha256-modp3072", "aes128-sha256", true},
	{"aes256gcm16-prfsha512-ecp521", "aes256gcm16", "aes256gcm16-prfsha512-ecp521", "aes256gcm16", false},
	{"aes192-sha384-ecp384", "aes192-sha384-ecp521", "aes192-sha384-prfsha384-ecp384", "aes192-sha384", true},
	{"aes256-sha512-x25519", "aes256-sha512-modp3072", "aes256-sha512-prfsha512-x25519", "aes256-sha512", true},
	{"aes128gcm16-prfsha256-ecp256", "aes128gcm16-x25519", "aes128gcm16-prfsha256-ecp256", "aes128gcm16", true},
	{"aes192gcm16-prfsha384-modp2048", "aes192gcm16-ecp256", "aes192gcm16-prfsha384-modp2048", "aes192gcm16", true},
	{"chacha20poly1305-prfsha256-x25519", "chacha20poly1305-ecp384", "chacha20poly1305-prfsha256-x25519", "chacha20poly1305", true},
	{"aes128-sha512-prfsha384-ecp256", "aes128-sha384", "aes128-sha512-prfsha384-ecp256", "aes128-sha384", false},
	{"aes256-sha256-modp2048", "aes256-sha256", "aes256-sha256-prfsha256-modp2048", "aes256-sha256", false},
	{"aes192-sha256-ecp521", "aes192-sha512", "aes192-sha256-prfsha256-ecp521", "aes192-sha512", false},
}

// fullMatrix is every IKE proposal we implement (DefaultIKEProposals,
// which is all of them) once, each with an ESP proposal from the cycle of
// every ESP suite we implement times every PFS choice (none or one of the
// groups), so that each ESP suite and group comes up at least twice. The
// first pass through the ESP cycle rekeys its child when it has a group;
// the rest only establish and ping.
func fullMatrix() []matrixCase {
	var esp []ipsec.Proposal
	for _, g := range []uint16{0, ipsec.DHCurve25519, ipsec.DHECP256, ipsec.DHECP384, ipsec.DHECP521, ipsec.DHModp3072, ipsec.DHModp2048} {
		for _, p := range ipsec.DefaultESPProposals {
			p.DHGroup = g
			esp = append(esp, p)
		}
	}
	var out []matrixCase
	for i, p := range ipsec.DefaultIKEProposals {
		e := esp[i%len(esp)]
		first := e
		first.DHGroup = 0
		out = append(out, matrixCase{ike: p.String(), esp: e.String(), wantIKE: p.String(), wantESP: first.String(), pfs: e.DHGroup != 0 && i < len(esp)})
	}
	return out
}

// Issue 16, point 6: our defaults against strongSwan peers configured
// with exactly one proposal each. Our initiator with the default offer
// connects to a strongSwan responder for every case of the matrix (and
// switches the key exchange group when asked to); a strongSwan initiator
// with one proposal connects to our responder's default set for a subset.
// Each time a ping passes, and with a PFS group a child rekey keeps it
// passing. The full matrix (every IKE proposal we implement) takes about
// three minutes; -short runs the curated proposalMatrix only.
func TestProposalMatrix(t *testing.T) {
	swaninterop.Require(t, "ping")
	// The parser reads what strongSwan reads, and what we report is what
	// the parser writes.
	for _, c := range proposalMatrix {
		ike, err := ipsec.ParseIKEProposals(c.ike)
		if err != nil || len(ike) != 1 || ike[0].String() != c.wantIKE {
			t.Fatalf("ParseIKEProposals(%q) = %v, %v", c.ike, ike, err)
		}
		if _, err := ipsec.ParseESPProposals(c.esp); err != nil {
			t.Fatal(err)
		}
	}
	// One lab (namespaces, certificates) for all cases; one charon per
	// case, so that each starts from a clean log and SA table.
	l := swaninterop.NewLab(t, swaninterop.LabOptions{Mode: swaninterop.RoadWarrior, KeyType: swaninterop.ECDSAP256})
	forward := proposalMatrix
	if !testing.Short() {
		forward = fullMatrix()
	}
	start := time.Now()
	t.Run("go-initiator", func(t *testing.T) {
		// One charon for all cases, loaded with each case's connection
		// in turn (swanctl --load-all --clear): a start per case would
		// double the time of the full matrix.
		resp := startSwanResponder(t, l, forward[0].ike, forward[0].esp)
		for _, c := range forward {
			t.Run(c.ike+"/"+c.esp, func(t *testing.T) {
				conn := l.ResponderConn()
				conn.Proposals, conn.ESPProposals = []string{c.ike}, []string{c.esp}
				resp.Load(t, conn.String())
				g := dialFromI(t, l, initiatorConfig(t, l), 0)
				if got := g.c.IKEProposal().String(); got != c.wantIKE {
					t.Errorf("IKE suite %s, want %s", got, c.wantIKE)
				}
				if got := g.c.ESPProposal().String(); got != c.wantESP {
					t.Errorf("ESP suite %s, want %s", got, c.wantESP)
				}
				if got := l.I.Ping(t, l.Target(), 3); got != 3 {
					t.Fatalf("%d of 3 pings answered\n%s", got, resp.ListSAs(t))
				}
				if c.pfs {
					rekeyed := countLog(resp.Log(), `closing CHILD_SA `+swaninterop.ChildName+`\{`)
					if out, err := resp.Swanctl(15*time.Second, "--rekey", "--child", swaninterop.ChildName); err != nil {
						t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
					}
					waitCharonLog(t, resp, `closing CHILD_SA `+swaninterop.ChildName+`\{`, rekeyed+1, 10*time.Second)
					if got := l.I.Ping(t, l.Target(), 3); got != 3 {
						t.Fatalf("after the child rekey with PFS: %d of 3 pings answered\n%s", got, resp.ListSAs(t))
					}
					// The new child's keys came from a key exchange in
					// strongSwan's group.
					if got := g.c.ESPProposal().String(); got != c.esp {
						t.Errorf("ESP suite after the rekey %s, want %s", got, c.esp)
					}
					if err := g.c.Err(); err != nil {
						t.Fatalf("the Client ended: %v", err)
					}
				}
			})
			if t.Failed() {
				t.Logf("charon.log:\n%s", resp.Log())
				return
			}
		}
	})
	t.Logf("%d cases with our initiator in %v", len(forward), time.Since(start).Round(time.Second))
	t.Run("go-responder", func(t *testing.T) {
		for _, i := range []int{0, 1, 2, 6} {
			c := proposalMatrix[i]
			t.Run(c.ike+"/"+c.esp, func(t *testing.T) {
				log, capture := captureLog(t)
				r := startGoResponder(t, l, "", capture)
				conn := l.InitiatorConn()
				conn.Proposals, conn.ESPProposals = []string{c.ike}, []string{c.esp}
				ini := initiate(t, l, conn)
				waitUp(t, r.hub, 5*time.Second)
				if log.count(`msg="IKE SA established".* proposal=`+c.wantIKE+`$`) != 1 || log.count(`msg="CHILD_SA established".* proposal=`+c.wantESP+`$`) != 1 {
					t.Errorf("the responder did not log IKE %s and ESP %s", c.wantIKE, c.wantESP)
				}
				if got := l.I.Ping(t, l.Target(), 3); got != 3 {
					t.Fatalf("%d of 3 pings answered\n%s", got, ini.ListSAs(t))
				}
				if c.pfs {
					if out, err := ini.Swanctl(15*time.Second, "--rekey", "--child", swaninterop.ChildName); err != nil {
						t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
					}
					ini.WaitLog(t, `closing CHILD_SA `+swaninterop.ChildName+`\{1\}`, 10*time.Second)
					if got := l.I.Ping(t, l.Target(), 3); got != 3 {
						t.Fatalf("after the child rekey with PFS: %d of 3 pings answered\n%s", got, ini.ListSAs(t))
					}
					if sas := ini.ListSAs(t); !strings.Contains(sas, "INSTALLED") {
						t.Fatalf("no child after the rekey:\n%s", sas)
					}
				}
			})
		}
	})
}

// waitCharonLog waits until charon.log has n lines matching re.
func waitCharonLog(t *testing.T, c *swaninterop.Charon, re string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for countLog(c.Log(), re) < n {
		if time.Now().After(deadline) {
			t.Fatalf("charon.log did not reach %d lines matching %q within %v", n, re, timeout)
		}
		time.Sleep(20 * time.Millisecond) // polling the log file for the condition
	}
}
