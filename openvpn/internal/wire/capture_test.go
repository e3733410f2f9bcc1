package wire

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// captured is one UDP payload of a stock-openvpn session (testdata/capture.sh).
type captured struct {
	fromClient bool
	data       []byte
}

// readPcap returns the UDP payloads of a little-endian, Ethernet-framed
// (Linux lo) IPv4 pcap, marking those sent to serverPort as from the client.
// Hand-rolled because the format is tiny and the test should not need more.
func readPcap(t testing.TB, path string, serverPort uint16) []captured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: not a pcap", path)
	}
	magic := binary.LittleEndian.Uint32(b)
	if (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d) || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s: want a little-endian Ethernet pcap", path)
	}
	var out []captured
	for b = b[24:]; len(b) >= 16; {
		n := int(binary.LittleEndian.Uint32(b[8:]))
		if len(b) < 16+n {
			t.Fatalf("%s: truncated record", path)
		}
		frame := b[16 : 16+n]
		b = b[16+n:]
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&15) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		ulen := int(binary.BigEndian.Uint16(udp[4:]))
		if ulen < 8 || ulen > len(udp) {
			t.Fatalf("%s: bad UDP length", path)
		}
		out = append(out, captured{
			fromClient: binary.BigEndian.Uint16(udp[2:]) == serverPort,
			data:       udp[8:ulen],
		})
	}
	return out
}

type captureCase struct {
	name string
	port uint16
	// client and server protections.
	cli, srv func(t testing.TB, dir string) *Protection
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func staticKeyFile(t testing.TB, path string) *StaticKey {
	t.Helper()
	k, err := ParseStaticKey(readFile(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

func tlsAuthCase(name string, port uint16, cliDir, srvDir int, digest crypto.Hash) captureCase {
	p := func(dir int) func(testing.TB, string) *Protection {
		return func(t testing.TB, d string) *Protection {
			return &Protection{Mode: ModeTLSAuth, Key: staticKeyFile(t, filepath.Join(d, "ta.key")), KeyDirection: dir, Digest: digest}
		}
	}
	return captureCase{name, port, p(cliDir), p(srvDir)}
}

var captureCases = []captureCase{
	{"tls-crypt", 31941,
		func(t testing.TB, d string) *Protection {
			return &Protection{Mode: ModeTLSCrypt, Key: staticKeyFile(t, filepath.Join(d, "tc.key"))}
		},
		func(t testing.TB, d string) *Protection {
			return &Protection{Mode: ModeTLSCrypt, Key: staticKeyFile(t, filepath.Join(d, "tc.key"))}
		}},
	tlsAuthCase("tls-auth", 31942, 1, 0, 0),
	tlsAuthCase("tls-auth-sha256", 31943, 1, 0, crypto.SHA256),
	tlsAuthCase("tls-auth-nodir", 31944, -1, -1, crypto.SHA1),
	{"tls-crypt-v2", 31945,
		func(t testing.TB, d string) *Protection {
			ck, err := ParseV2ClientKey(readFile(t, filepath.Join(d, "client.key")))
			if err != nil {
				t.Fatal(err)
			}
			return &Protection{Mode: ModeTLSCryptV2, ClientKey: ck}
		},
		func(t testing.TB, d string) *Protection {
			sk, err := ParseV2ServerKey(readFile(t, filepath.Join(d, "server.key")))
			if err != nil {
				t.Fatal(err)
			}
			return &Protection{Mode: ModeTLSCryptV2, ServerKey: sk}
		}},
}

// replayIDOf reads the replay packet id and time of a protected packet.
func replayIDOf(p *Protection, b []byte) (pid, ts uint32) {
	off := 9
	if p.Mode == ModeTLSAuth {
		off += digestFunc(p.Digest)().Size()
	}
	return binary.BigEndian.Uint32(b[off:]), binary.BigEndian.Uint32(b[off+4:])
}

// TestStockCaptures decodes every control packet stock openvpn 2.6 sent in
// each protection mode, re-encodes it to the same bytes, and checks that a
// wrong key fails authentication.
func TestStockCaptures(t *testing.T) {
	for _, cc := range captureCases {
		t.Run(cc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "capture", cc.name)
			pkts := readPcap(t, filepath.Join("testdata", "capture", cc.name+".pcap"), cc.port)
			cp, sp := cc.cli(t, dir), cc.srv(t, dir)
			srv, err := NewCodec(sp, RoleServer, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			cli, err := NewCodec(cp, RoleClient, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var sids [2]SessionID
			control, ops := 0, map[Opcode]int{}
			for i, c := range pkts {
				op, _ := SplitOpcode(c.data[0])
				if op.IsData() {
					continue
				}
				control++
				dec, sendProt, sendRole := srv, cp, RoleClient
				if !c.fromClient {
					dec, sendProt, sendRole = cli, sp, RoleServer
				}
				p, err := dec.Decode(append([]byte(nil), c.data...))
				if err != nil {
					t.Fatalf("packet %d (%v, from client %v, %d bytes): %v", i, op, c.fromClient, len(c.data), err)
				}
				ops[p.Opcode]++
				side := 0
				if !c.fromClient {
					side = 1
				}
				if sids[side].IsZero() {
					sids[side] = p.SessionID
				} else if p.SessionID != sids[side] {
					t.Fatalf("packet %d: session id changed %x -> %x", i, sids[side], p.SessionID)
				}
				if len(p.Acks) > 0 && !sids[1-side].IsZero() && p.RemoteSessionID != sids[1-side] {
					t.Fatalf("packet %d: remote session id %x, peer is %x", i, p.RemoteSessionID, sids[1-side])
				}
				pk, _, pt, err := PeekHeader(c.data)
				if err != nil || pk != p.Opcode || pt != p.SessionID {
					t.Fatalf("packet %d: PeekHeader %v %x %v", i, pk, pt, err)
				}
				pid, ts := replayIDOf(sendProt, c.data)
				if gp, gt := dec.LastReplayID(); gp != pid || gt != ts {
					t.Fatalf("packet %d: LastReplayID %x/%x, wire %x/%x", i, gp, gt, pid, ts)
				}
				enc, err := NewCodec(sendProt, sendRole, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if sendRole == RoleServer && sp.Mode == ModeTLSCryptV2 {
					// A v2 server learns Kc from the client's first packet.
					if _, err := enc.Decode(append([]byte(nil), pkts[0].data...)); err != nil {
						t.Fatal(err)
					}
				}
				enc.SetTime(pid, ts)
				p.WKc = nil // the client codec appends its own
				re, err := enc.Encode(nil, &p)
				if err != nil {
					t.Fatalf("packet %d: encode: %v", i, err)
				}
				if !bytes.Equal(re, c.data) {
					t.Fatalf("packet %d (%v) re-encoded\n %x\nwant\n %x", i, p.Opcode, re, c.data)
				}
				// Replay of the same bytes is refused.
				if _, err := dec.Decode(append([]byte(nil), c.data...)); !errors.Is(err, ErrReplay) {
					t.Fatalf("packet %d: replay gave %v", i, err)
				}
			}
			if control < 8 || ops[OpControlV1] == 0 || ops[OpAckV1] == 0 {
				t.Fatalf("capture too thin: %d control packets, opcodes %v", control, ops)
			}
			t.Logf("%d control packets, opcodes %v", control, ops)

			// A wrong key fails authentication, in both directions, and
			// leaves the packet bytes as they were.
			wrongCli, wrongSrv := wrongProtections(t, cp, sp)
			for _, c := range pkts[:4] {
				role, prot := RoleServer, wrongSrv
				if !c.fromClient {
					role, prot = RoleClient, wrongCli
				}
				w, err := NewCodec(prot, role, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				in := append([]byte(nil), c.data...)
				if _, err := w.Decode(in); !errors.Is(err, ErrAuth) {
					t.Fatalf("wrong key: %v", err)
				}
				if !bytes.Equal(in, c.data) {
					t.Fatal("failed Decode changed the packet bytes")
				}
			}
		})
	}
}

// wrongProtections are cp and sp with fresh random keys.
func wrongProtections(t testing.TB, cp, sp *Protection) (*Protection, *Protection) {
	k, _ := GenerateStaticKey(rand.Reader)
	c, s := *cp, *sp
	c.Key, s.Key = k, k
	if cp.Mode == ModeTLSCryptV2 {
		sk, _ := GenerateV2ServerKey(rand.Reader)
		ck, _ := GenerateV2ClientKey(sk, nil, time.Now(), rand.Reader)
		c.ClientKey, s.ServerKey = ck, sk
	}
	return &c, &s
}

// TestStockTLSCryptV2 checks the tls-crypt-v2 specifics of the capture: the
// stock client key unwraps with the stock server key, the first packet
// carries that WKc and the early-negotiation replay id, and a fresh server
// codec can start from the WKC_V1 packet alone.
func TestStockTLSCryptV2(t *testing.T) {
	dir := filepath.Join("testdata", "capture", "tls-crypt-v2")
	sk, err := ParseV2ServerKey(readFile(t, filepath.Join(dir, "server.key")))
	if err != nil {
		t.Fatal(err)
	}
	ck, err := ParseV2ClientKey(readFile(t, filepath.Join(dir, "client.key")))
	if err != nil {
		t.Fatal(err)
	}
	kc, md, err := sk.UnwrapClientKey(ck.WKc)
	if err != nil || *kc != ck.Key {
		t.Fatalf("unwrap stock client key: %v", err)
	}
	if len(md) != 9 || md[0] != 1 {
		t.Fatalf("metadata %x, want type 1 timestamp", md)
	}
	pkts := readPcap(t, filepath.Join("testdata", "capture", "tls-crypt-v2.pcap"), 31945)
	first := pkts[0]
	if op, _ := SplitOpcode(first.data[0]); op != OpControlHardResetClientV3 || !first.fromClient {
		t.Fatalf("first packet is %v", op)
	}
	srv, _ := NewCodec(&Protection{Mode: ModeTLSCryptV2, ServerKey: sk}, RoleServer, time.Now())
	p, err := srv.Decode(append([]byte(nil), first.data...))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.WKc, ck.WKc) || !bytes.Equal(srv.ClientMetadata(), md) {
		t.Fatalf("WKc/metadata of the reset differ from the key file")
	}
	if pid, _ := srv.LastReplayID(); pid != EarlyNegotiationPacketID {
		t.Fatalf("stock 2.6 client's first replay id %#x", pid)
	}
	// The server's reset asks for the WKc again (TLV type 1, flag 1), so the
	// client's next packet is a WKC_V1; a stateless server meets it fresh.
	var wkcPkt []byte
	for _, c := range pkts {
		if op, _ := SplitOpcode(c.data[0]); op == OpControlWKCV1 {
			wkcPkt = c.data
			break
		}
	}
	if wkcPkt == nil {
		t.Fatal("no P_CONTROL_WKC_V1 in the capture")
	}
	fresh, _ := NewCodec(&Protection{Mode: ModeTLSCryptV2, ServerKey: sk}, RoleServer, time.Now())
	q, err := fresh.Decode(append([]byte(nil), wkcPkt...))
	if err != nil {
		t.Fatalf("fresh server codec on WKC_V1: %v", err)
	}
	if q.MessageID != 1 || len(q.Payload) == 0 || q.Payload[0] != 0x16 || !bytes.Equal(fresh.ClientMetadata(), md) {
		t.Fatalf("WKC_V1 decoded as msg-id %d payload %x...", q.MessageID, q.Payload[:min(len(q.Payload), 8)])
	}
	// The server reset's early-negotiation TLV.
	cli, _ := NewCodec(&Protection{Mode: ModeTLSCryptV2, ClientKey: ck}, RoleClient, time.Now())
	r, err := cli.Decode(append([]byte(nil), pkts[1].data...))
	if err != nil {
		t.Fatal(err)
	}
	if r.Opcode != OpControlHardResetServerV2 || fmt.Sprintf("%x", r.Payload) != "000100020001" {
		t.Fatalf("server reset %v payload %x", r.Opcode, r.Payload)
	}
}
