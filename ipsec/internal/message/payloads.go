package message

import "net/netip"

// Payload is one payload of a chain. The concrete types are the pointer types
// of this package (*SA, *KE, *ID, ...); the encoder refuses anything else.
type Payload interface {
	Type() PayloadType
}

// SA is a Security Association payload (RFC 7296 §3.3).
type SA struct {
	Proposals []Proposal
}

// Proposal is a proposal substructure. Its number is kept as received: the
// responder must echo the number of the proposal it accepts.
type Proposal struct {
	Number   uint8
	Protocol Protocol
	// SPI is empty in IKE_SA_INIT, 8 bytes for an IKE SA rekey, 4 bytes for
	// ESP and AH. Other sizes are refused in both directions.
	SPI        []byte
	Transforms []Transform
}

// Transform is a transform substructure.
type Transform struct {
	Type TransformType
	ID   uint16
	// KeyLength is the Key Length attribute in bits; 0 means the attribute
	// is absent. It is also 0 for an Unsupported transform, and a Key
	// Length of 0 on the wire makes the transform Unsupported.
	KeyLength uint16
	// Unsupported is set by the parser when the transform carries attributes
	// other than a single Key Length. RFC 7296 §3.3.6 says to reject such a
	// transform, not the message, so it is parsed and the proposal selector
	// must skip it.
	Unsupported bool
	// RawAttributes holds the attribute bytes of an Unsupported transform as
	// received, so that the message re-encodes unchanged. When it is not
	// empty the encoder writes it verbatim instead of KeyLength; it must be
	// well-formed TV/TLV attributes.
	RawAttributes []byte
}

// KE is a Key Exchange payload (RFC 7296 §3.4).
type KE struct {
	Group uint16
	Data  []byte
}

// Nonce is a Nonce payload (RFC 7296 §3.9). The 16..256 byte bound of the
// RFC is policy for the caller; the codec takes any length.
type Nonce struct {
	Data []byte
}

// Notify is a Notify payload (RFC 7296 §3.10).
type Notify struct {
	Protocol   Protocol
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

// ID is an Identification payload, IDi or IDr (RFC 7296 §3.5).
type ID struct {
	// Responder selects IDr; IDi otherwise.
	Responder bool
	IDType    IDType
	Data      []byte
	// reserved keeps the three reserved octets as received: RFC 7296 says to
	// ignore them, but the AUTH computation covers the body as the peer sent
	// it. Payloads built by callers have zeros.
	reserved [3]byte
}

// Body returns the payload body without the 4-byte generic header — ID
// Type, three reserved octets, identification data — i.e. RestOfInitIDPayload
// / RestOfRespIDPayload, the input of prf(SK_p, ...) in the AUTH computation
// (RFC 7296 §2.15). For a parsed payload these are the bytes as received.
// The result is a new slice.
func (p *ID) Body() []byte {
	b := make([]byte, 0, 4+len(p.Data))
	b = append(b, byte(p.IDType), p.reserved[0], p.reserved[1], p.reserved[2])
	return append(b, p.Data...)
}

// Cert is a Certificate payload (RFC 7296 §3.6).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// CertReq is a Certificate Request payload (RFC 7296 §3.7). With encoding
// CertX509Signature, Data is a concatenation of 20-byte SHA-1 hashes of
// trusted CAs' SubjectPublicKeyInfo.
type CertReq struct {
	Encoding uint8
	Data     []byte
}

// Auth is an Authentication payload (RFC 7296 §3.8).
type Auth struct {
	Method AuthMethod
	Data   []byte
}

// TrafficSelectors is a TSi or TSr payload (RFC 7296 §3.13).
type TrafficSelectors struct {
	// Responder selects TSr; TSi otherwise.
	Responder bool
	Selectors []Selector
}

// Selector is one traffic selector, an inclusive range of addresses and
// ports for one IP protocol (0 = any). Its type, TS_IPV4_ADDR_RANGE (7) or
// TS_IPV6_ADDR_RANGE (8), follows from the addresses: Start and End must both
// be IPv4 (Is4) or both IPv6. Parsed IPv6 selectors holding IPv4-mapped
// addresses stay IPv6 (Is4In6), so they re-encode as type 8.
type Selector struct {
	Protocol           uint8
	StartPort, EndPort uint16
	Start, End         netip.Addr
}

// CP is a Configuration payload (RFC 7296 §3.15).
type CP struct {
	CfgType    uint8
	Attributes []Attribute
}

// Attribute is a configuration attribute. Type has 15 bits; the reserved top
// bit is ignored when parsing and must be zero when encoding.
type Attribute struct {
	Type  uint16
	Value []byte
}

// Delete is a Delete payload (RFC 7296 §3.11). Every SPI must be SPISize
// bytes; deleting the IKE SA uses SPISize 0 and no SPIs.
type Delete struct {
	Protocol Protocol
	SPISize  uint8
	SPIs     [][]byte
}

// VendorID is a Vendor ID payload (RFC 7296 §3.12).
type VendorID struct {
	Data []byte
}

// EAP is an EAP payload (RFC 7296 §3.16); Data is the EAP message.
type EAP struct {
	Data []byte
}

// Encrypted is an Encrypted and Authenticated payload, SK (RFC 7296 §3.14).
// It is always the last payload of a message. NextPayload is the type of the
// first payload inside the ciphertext (NoNext for an empty one); Body is IV,
// ciphertext (with padding and pad length) and ICV, which this package does
// not interpret.
type Encrypted struct {
	NextPayload PayloadType
	Body        []byte
}

// Fragment is an Encrypted Fragment payload, SKF (RFC 7383 §2.5). Number
// counts from 1 to Total (both directions refuse anything else). RFC 7383
// wants NextPayload to be NoNext in every fragment but the first; that is
// for the reassembler to check, the codec keeps what it received. Body is
// IV, ciphertext and ICV, as for SK.
type Fragment struct {
	NextPayload   PayloadType
	Number, Total uint16
	Body          []byte
}

// Unknown is a payload of a type this package does not know, received
// without the critical bit (RFC 7296 §2.5: skip it). It is kept so that a
// chain re-encodes unchanged. PayloadType must not be NoNext or a known
// type when encoding.
type Unknown struct {
	PayloadType PayloadType
	Critical    bool
	Data        []byte
}

// Type methods. They tolerate nil receivers, so that a nil payload in a slice
// reaches the encoder's error instead of a panic.

func (*SA) Type() PayloadType        { return PayloadSA }
func (*KE) Type() PayloadType        { return PayloadKE }
func (*Nonce) Type() PayloadType     { return PayloadNonce }
func (*Notify) Type() PayloadType    { return PayloadNotify }
func (*Cert) Type() PayloadType      { return PayloadCERT }
func (*CertReq) Type() PayloadType   { return PayloadCERTREQ }
func (*Auth) Type() PayloadType      { return PayloadAUTH }
func (*CP) Type() PayloadType        { return PayloadCP }
func (*Delete) Type() PayloadType    { return PayloadDelete }
func (*VendorID) Type() PayloadType  { return PayloadVendorID }
func (*EAP) Type() PayloadType       { return PayloadEAP }
func (*Encrypted) Type() PayloadType { return PayloadSK }
func (*Fragment) Type() PayloadType  { return PayloadSKF }

func (p *ID) Type() PayloadType {
	if p != nil && p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

func (p *TrafficSelectors) Type() PayloadType {
	if p != nil && p.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

func (p *Unknown) Type() PayloadType {
	if p == nil {
		return NoNext
	}
	return p.PayloadType
}

// Find returns the first payload of type T in ps, e.g.
// Find[*KE](ps). For IDi versus IDr or TSi versus TSr, which share a Go
// type, check Responder or use FindType.
func Find[T Payload](ps []Payload) (T, bool) {
	for _, p := range ps {
		if q, ok := p.(T); ok {
			return q, true
		}
	}
	var zero T
	return zero, false
}

// FindType returns the first payload whose Type() is t.
func FindType(ps []Payload, t PayloadType) (Payload, bool) {
	for _, p := range ps {
		if p != nil && p.Type() == t {
			return p, true
		}
	}
	return nil, false
}

// Notifies returns the Notify payloads of ps in order.
func Notifies(ps []Payload) []*Notify {
	var out []*Notify
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n != nil {
			out = append(out, n)
		}
	}
	return out
}

// FindNotify returns the first Notify of type t.
func FindNotify(ps []Payload, t NotifyType) (*Notify, bool) {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n != nil && n.NotifyType == t {
			return n, true
		}
	}
	return nil, false
}
