package ipsec

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/remotegate/remotegate/ipsec/internal/ikecrypto"
	"github.com/remotegate/remotegate/ipsec/internal/message"
)

// FragmentationMode says whether IKE fragmentation (RFC 7383) is offered
// to the peer. The zero value offers it, as strongSwan does.
type FragmentationMode uint8

const (
	// FragmentationSupported sends IKEV2_FRAGMENTATION_SUPPORTED (as
	// initiator in IKE_SA_INIT, as responder when the initiator sent it)
	// and, when both sides support it, reassembles the peer's Encrypted
	// Fragment payloads and fragments our messages larger than
	// FragmentSize. Certificate chains then need no IP fragmentation,
	// which NATs and firewalls often drop.
	FragmentationSupported FragmentationMode = iota
	// FragmentationDisabled neither offers fragmentation nor accepts
	// fragments: large messages go out whole, IP-fragmented.
	FragmentationDisabled
)

const (
	// defaultFragmentSize is the default of FragmentSize: strongSwan's
	// charon.fragment_size, an IP datagram that IPv6 carries without
	// fragmentation on any link.
	defaultFragmentSize = 1280
	// minFragmentSize leaves room for some payload after the IPv6, UDP,
	// non-ESP marker, IKE, SKF headers and the largest SK overhead (CBC IV,
	// padding, a 32-byte ICV): about 150 bytes.
	minFragmentSize = 256
	// maxFragments and maxReassembled bound the memory a peer can make us
	// hold for one message: RFC 7383 §2.6.2 leaves the limits to the
	// receiver, and no IKE message of ours or strongSwan's comes close
	// (strongSwan refuses more than 10000 bytes by default).
	maxFragments   = 64
	maxReassembled = 64 << 10
)

// fragmentLimit is the largest IKE message of a fragment for a FragmentSize
// (an IP datagram size, like strongSwan's fragment_size) toward remote:
// without the IP and UDP headers and the non-ESP marker. The marker is
// always counted: the peer may float to port 4500 after IKE_SA_INIT, and
// 4 bytes less payload per fragment cost nothing.
func fragmentLimit(size int, remote netip.AddrPort) int {
	if size == 0 {
		size = defaultFragmentSize
	}
	ip := 20
	if remote.Addr().Is6() && !remote.Addr().Is4In6() {
		ip = 40
	}
	return size - ip - 8 - message.NonESPMarkerLen
}

// checkFragmentSize validates a FragmentSize of a Config or DialConfig.
func checkFragmentSize(size int) error {
	if size != 0 && (size < minFragmentSize || size > 65535) {
		return fmt.Errorf("%w: FragmentSize %d is not between %d and 65535", ErrConfig, size, minFragmentSize)
	}
	return nil
}

// errFragment marks fragments that are refused (not merely incomplete).
var errFragment = errors.New("ipsec: IKE fragment refused")

// reassembly is the one message of a direction (requests or responses of
// the peer) of an IKE SA whose fragments are being collected. Only
// authenticated fragments change it, so forged datagrams cannot disturb a
// reassembly in progress.
type reassembly struct {
	active   bool
	mid      uint32
	exchange message.ExchangeType
	total    uint16
	next     message.PayloadType
	parts    [][]byte // decrypted inner bytes by fragment number - 1
	have     int
	size     int
}

func (r *reassembly) reset() { *r = reassembly{} }

// openMessage authenticates and decrypts an SK or SKF message with sk. For
// an SK message, or for the last missing fragment of a message, it returns
// the inner payloads and done true; for any other authentic fragment it
// returns done false and keeps the fragment in r. r nil refuses fragments
// (fragmentation was not negotiated). The caller has checked the message
// ID, so a fragment of another message ID than the one in r starts a new
// reassembly, discarding the old one.
func openMessage(sk *ikecrypto.SKCipher, msg []byte, r *reassembly) (ps []message.Payload, done bool, err error) {
	h, outer, err := message.Parse(msg)
	if err != nil {
		return nil, false, err
	}
	if len(outer) == 0 {
		return nil, false, errors.New("ipsec: message without SK payload")
	}
	switch p := outer[len(outer)-1].(type) {
	case *message.Encrypted:
		plain, err := sk.Open(msg[:len(msg)-len(p.Body)], p.Body)
		if err != nil {
			return nil, false, fmt.Errorf("ipsec: SK payload: %w", err)
		}
		ps, err := message.ParsePayloads(p.NextPayload, plain)
		if err != nil {
			return nil, false, fmt.Errorf("ipsec: inner payloads: %w", err)
		}
		if r != nil && r.active && r.mid == h.MessageID {
			// The message arrived whole after all (a sender may stop
			// fragmenting a retransmission): its fragments are of no
			// more use.
			r.reset()
		}
		return ps, true, nil
	case *message.Fragment:
		if r == nil {
			return nil, false, fmt.Errorf("%w: fragmentation was not negotiated", errFragment)
		}
		return r.add(sk, msg, h, p)
	}
	return nil, false, errors.New("ipsec: message without SK payload")
}

// add takes one fragment f of message msg (RFC 7383 §2.6).
func (r *reassembly) add(sk *ikecrypto.SKCipher, msg []byte, h message.Header, f *message.Fragment) ([]message.Payload, bool, error) {
	if f.Total > maxFragments {
		return nil, false, fmt.Errorf("%w: %d fragments, at most %d are accepted", errFragment, f.Total, maxFragments)
	}
	same := r.active && r.mid == h.MessageID && r.exchange == h.Exchange
	if same && f.Total < r.total {
		// §2.6.1: a retransmission split into fewer fragments than one
		// already seen is stale (the sender only lowers its size).
		return nil, false, nil
	}
	if same && f.Total == r.total && r.parts[f.Number-1] != nil {
		return nil, false, nil // a duplicate: nothing to decrypt
	}
	// Each fragment is sealed on its own; the prefix (the AAD, or the
	// start of the ICV input) runs through the SKF header with the
	// fragment numbers (§2.5).
	plain, err := sk.Open(msg[:len(msg)-len(f.Body)], f.Body)
	if err != nil {
		return nil, false, fmt.Errorf("ipsec: SKF payload: %w", err)
	}
	if !same || f.Total > r.total {
		// A new message, or the sender split its retransmission into more
		// fragments (§2.6.1: start over with those).
		*r = reassembly{active: true, mid: h.MessageID, exchange: h.Exchange, total: f.Total, parts: make([][]byte, f.Total)}
	}
	if r.size+len(plain) > maxReassembled {
		r.reset()
		return nil, false, fmt.Errorf("%w: message over %d bytes", errFragment, maxReassembled)
	}
	if f.Number == 1 {
		// Only the first fragment names the first inner payload; the
		// others carry zero (§2.5).
		r.next = f.NextPayload
	}
	// Open returns a fresh slice, so keeping it holds no datagram buffer.
	r.parts[f.Number-1] = plain
	r.have++
	r.size += len(plain)
	if r.have < int(r.total) {
		return nil, false, nil
	}
	inner := make([]byte, 0, r.size)
	for _, p := range r.parts {
		inner = append(inner, p...)
	}
	next := r.next
	r.reset()
	ps, err := message.ParsePayloads(next, inner)
	if err != nil {
		return nil, false, fmt.Errorf("ipsec: reassembled inner payloads: %w", err)
	}
	return ps, true, nil
}

// sealMessage builds an encrypted message: one SK message when it fits in
// limit bytes or limit is 0 (fragmentation not negotiated), otherwise SKF
// fragments of at most limit bytes each (RFC 7383 §2.5), each sealed on
// its own. The header and payload lengths are written before sealing,
// because they are authenticated.
func sealMessage(sk *ikecrypto.SKCipher, h message.Header, ps []message.Payload, limit int) ([][]byte, error) {
	inner, first, err := message.AppendPayloads(nil, ps)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || message.HeaderLen+4+sk.BodyLen(len(inner)) <= limit {
		body := sk.BodyLen(len(inner))
		h.NextPayload = message.PayloadSK
		h.Length = uint32(message.HeaderLen + 4 + body)
		buf := h.AppendTo(make([]byte, 0, int(h.Length)))
		buf = append(buf, byte(first), 0, byte((4+body)>>8), byte(4+body))
		msg, err := sk.Seal(buf, inner)
		if err != nil {
			return nil, err
		}
		return [][]byte{msg}, nil
	}
	const overhead = message.HeaderLen + 8 // IKE header, SKF header with the numbers
	chunk := limit - overhead
	for chunk > 0 && overhead+sk.BodyLen(chunk) > limit {
		chunk--
	}
	if chunk <= 0 {
		return nil, fmt.Errorf("ipsec: fragments of %d bytes leave no room for payload", limit)
	}
	total := (len(inner) + chunk - 1) / chunk
	if total > 0xffff {
		return nil, fmt.Errorf("ipsec: a message of %d bytes needs %d fragments", len(inner), total)
	}
	out := make([][]byte, 0, total)
	h.NextPayload = message.PayloadSKF
	for i := range total {
		part := inner[i*chunk : min((i+1)*chunk, len(inner))]
		body := sk.BodyLen(len(part))
		h.Length = uint32(overhead + body)
		next := message.NoNext
		if i == 0 {
			next = first
		}
		buf := h.AppendTo(make([]byte, 0, int(h.Length)))
		buf = append(buf, byte(next), 0, byte((8+body)>>8), byte(8+body),
			byte((i+1)>>8), byte(i+1), byte(total>>8), byte(total))
		msg, err := sk.Seal(buf, part)
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, nil
}

// firstFragment reports whether msg is unfragmented or the first fragment
// of a message: a retransmitted fragmented request is answered once, on
// its first fragment, not once per fragment (RFC 7383 §2.6.1).
func firstFragment(msg []byte) bool {
	_, ps, err := message.Parse(msg)
	if err != nil || len(ps) == 0 {
		return false
	}
	f, ok := ps[len(ps)-1].(*message.Fragment)
	return !ok || f.Number == 1
}
