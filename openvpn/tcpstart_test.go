package openvpn

import (
	crand "crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/remotegate/remotegate/openvpn/internal/wire"
)

// scriptedTCPClient plays the client side of a TCP session packet by packet,
// without control-channel protection, as a stock client would on the wire.
type scriptedTCPClient struct {
	conn  net.Conn
	codec *wire.Codec
	sid   wire.SessionID
}

// dialScripted connects to addr; it may be called from any goroutine.
func dialScripted(t testing.TB, addr string) (*scriptedTCPClient, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	codec, err := wire.NewCodec(Protection{}.wire(), wire.RoleClient, time.Now())
	if err != nil {
		return nil, err
	}
	sid, err := wire.NewSessionID(crand.Reader)
	if err != nil {
		return nil, err
	}
	return &scriptedTCPClient{conn: conn, codec: codec, sid: sid}, nil
}

// send writes the packets in one write, so that they arrive together as
// a stock client's burst does.
func (c *scriptedTCPClient) send(pkts ...*wire.Packet) error {
	var out []byte
	for _, p := range pkts {
		p.SessionID = c.sid
		b, err := c.codec.Encode(nil, p)
		if err != nil {
			return err
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	_, err := c.conn.Write(out)
	return err
}

// recv reads and decodes the server's next packet before the deadline.
func (c *scriptedTCPClient) recv(deadline time.Time) (wire.Packet, error) {
	_ = c.conn.SetReadDeadline(deadline)
	var hdr [2]byte
	if _, err := io.ReadFull(c.conn, hdr[:]); err != nil {
		return wire.Packet{}, err
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c.conn, b); err != nil {
		return wire.Packet{}, err
	}
	p, err := c.codec.Decode(b)
	if err != nil {
		return wire.Packet{}, fmt.Errorf("server sent an undecodable packet: %w", err)
	}
	p.Acks = slices.Clone(p.Acks)
	p.Payload = slices.Clone(p.Payload)
	return p, nil
}

// clientHello is the first TLS record a client sends: what a stock client
// puts in its message 1.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go func() {
		// X25519 only keeps the record small enough for one control
		// packet, as OpenSSL 3.0's is.
		_ = tls.Client(a, &tls.Config{InsecureSkipVerify: true, CurvePreferences: []tls.CurveID{tls.X25519}}).Handshake()
	}()
	var hdr [5]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(b, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr[:], body...)
}

// Over TCP, the server's hard reset must acknowledge the client's reset, as
// a stock server's does. Sent bare and followed by a separate P_ACK_V1, it
// makes a stock 2.6 client send a corrupted packet (see
// TestTCPResetWithMessageIDOneIsNotMessageOne). Whether the server's loop
// sent its reset before taking in the client's packet was a race, so many
// connections are opened at once with more processors than cores.
func TestTCPServerResetCarriesTheAck(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(8, runtime.NumCPU())))
	e := newTestEnv(t)
	_, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS, MaxSessions: 4096, MaxPending: 4096, MaxPendingPerSource: 4096}, &echoHandler{})
	const rounds, perRound = 80, 50
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan string, perRound)
		for i := 0; i < perRound; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := dialScripted(t, addr)
				if err != nil {
					errs <- "dial: " + err.Error()
					return
				}
				defer c.conn.Close()
				if err := c.send(&wire.Packet{Opcode: wire.OpControlHardResetClientV2}); err != nil {
					errs <- "send: " + err.Error()
					return
				}
				p, err := c.recv(time.Now().Add(10 * time.Second))
				if err != nil {
					errs <- "no answer to the reset: " + err.Error()
					return
				}
				if p.Opcode != wire.OpControlHardResetServerV2 || p.MessageID != 0 {
					errs <- "first packet is " + p.Opcode.String() + ", want the server's hard reset"
					return
				}
				if !slices.Contains(p.Acks, 0) || p.RemoteSessionID != c.sid {
					errs <- "the server's hard reset does not acknowledge the client's"
				}
			}()
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Fatalf("round %d: %s", r, msg)
		}
	}
}

// A stock openvpn 2.6 client whose reset was answered with a bare reset and
// a separate ACK can send, over TCP, a packet with the reset opcode, message
// id 1 and no payload right before its real message 1 (the ClientHello): the
// buffer of its queued reset retransmission was reused for message 1. The
// server must not take the first for message 1, or it drops the ClientHello
// as a duplicate and the handshake stalls until the client gives up.
func TestTCPResetWithMessageIDOneIsNotMessageOne(t *testing.T) {
	e := newTestEnv(t)
	_, addr := startServer(t, "tcp", &ServerConfig{TLS: e.serverTLS}, &echoHandler{})
	hello := clientHello(t)
	c, err := dialScripted(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.send(&wire.Packet{Opcode: wire.OpControlHardResetClientV2}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var serverSID wire.SessionID
	for serverSID.IsZero() {
		p, err := c.recv(deadline)
		if err != nil {
			t.Fatalf("no hard reset from the server: %v", err)
		}
		if p.Opcode == wire.OpControlHardResetServerV2 {
			serverSID = p.SessionID
		}
	}
	if err := c.send(
		&wire.Packet{Opcode: wire.OpControlHardResetClientV2, Acks: []uint32{0}, RemoteSessionID: serverSID, MessageID: 1},
		&wire.Packet{Opcode: wire.OpControlV1, Acks: []uint32{0}, RemoteSessionID: serverSID, MessageID: 1, Payload: hello},
	); err != nil {
		t.Fatal(err)
	}
	// The ServerHello comes back as the server's message 1.
	deadline = time.Now().Add(5 * time.Second)
	for {
		p, err := c.recv(deadline)
		if err != nil {
			t.Fatalf("no ServerHello within 5 s (%v): the ClientHello was lost", err)
		}
		if p.Opcode == wire.OpControlV1 && p.MessageID == 1 {
			if len(p.Payload) < 6 || p.Payload[0] != 22 || p.Payload[5] != 2 {
				t.Fatalf("server's message 1 does not start with a ServerHello: % x", p.Payload[:min(len(p.Payload), 8)])
			}
			return
		}
	}
}
