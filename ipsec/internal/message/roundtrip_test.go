package message

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// allPayloads has one or more values of every payload type, with empty and
// non-empty variable fields, in an order that is a valid chain (SK last).
func allPayloads() []Payload {
	return []Payload{
		&SA{Proposals: []Proposal{
			{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformEncr, ID: EncrAESGCM16, KeyLength: 256},
				{Type: TransformPRF, ID: PRFHMACSHA384},
				{Type: TransformDH, ID: Curve25519},
			}},
			{Number: 2, Protocol: ProtoESP, SPI: hx("01020304"), Transforms: []Transform{
				{Type: TransformEncr, ID: EncrChaCha20Poly1305},
				{Type: TransformESN, ID: ESNYes},
				{Type: TransformEncr, ID: EncrAESCBC, Unsupported: true, RawAttributes: hx("800e0080 0001 0002 abcd")},
			}},
			{Number: 3, Protocol: ProtoIKE, SPI: hx("0102030405060708")},
		}},
		&SA{},
		&KE{Group: MODP2048, Data: fill(256, 1)},
		&KE{Group: Curve25519},
		&Nonce{Data: fill(32, 2)},
		&Nonce{},
		&Notify{NotifyType: NotifyCookie, Data: fill(16, 3)},
		&Notify{Protocol: ProtoESP, SPI: hx("deadbeef"), NotifyType: NotifyRekeySA},
		&Notify{NotifyType: NotifyInvalidKEPayload, Data: hx("0013")},
		&ID{IDType: IDFQDN, Data: []byte("ini.test")},
		&ID{Responder: true, IDType: IDIPv4Addr, Data: hx("0a000001")},
		&ID{IDType: IDKeyID},
		&Cert{Encoding: CertX509Signature, Data: fill(300, 4)},
		&Cert{Encoding: CertHashURLX509},
		&CertReq{Encoding: CertX509Signature, Data: fill(40, 5)},
		&CertReq{Encoding: CertX509Signature},
		&Auth{Method: AuthPSK, Data: fill(32, 6)},
		&Auth{Method: AuthRSA},
		&TrafficSelectors{Selectors: []Selector{
			{Start: netip.MustParseAddr("10.233.0.1"), End: netip.MustParseAddr("10.233.0.1"), EndPort: 65535},
			{Protocol: 17, StartPort: 500, EndPort: 4500,
				Start: netip.MustParseAddr("2001:db8::"), End: netip.MustParseAddr("2001:db8::ffff")},
			{Start: netip.MustParseAddr("::ffff:10.0.0.1"), End: netip.MustParseAddr("::ffff:10.0.0.2")},
		}},
		&TrafficSelectors{Responder: true},
		&CP{CfgType: CfgRequest, Attributes: []Attribute{
			{Type: AttrInternalIP4Address}, {Type: AttrInternalIP4DNS}, {Type: AttrInternalIP6Address}, {Type: AttrInternalIP6DNS},
		}},
		&CP{CfgType: CfgReply, Attributes: []Attribute{
			{Type: AttrInternalIP4Address, Value: hx("0ae90001")},
			{Type: AttrInternalIP6Address, Value: cat(netip.MustParseAddr("2001:db8::1").AsSlice(), []byte{128})},
			{Type: AttrInternalIP6DNS, Value: netip.MustParseAddr("2001:db8::53").AsSlice()},
			{Type: 0x7fff, Value: fill(3, 7)},
		}},
		&CP{CfgType: CfgAck},
		&Delete{Protocol: ProtoIKE},
		&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{hx("01020304"), hx("a1a2a3a4")}},
		&VendorID{Data: []byte("strongSwan")},
		&VendorID{},
		&EAP{Data: hx("0201000501")},
		&EAP{},
		&Unknown{PayloadType: 49, Data: fill(5, 8)},
		&Unknown{PayloadType: 200},
		&Encrypted{NextPayload: PayloadIDi, Body: fill(100, 9)},
	}
}

func TestRoundTripEveryPayload(t *testing.T) {
	for _, p := range allPayloads() {
		t.Run(p.Type().String(), func(t *testing.T) {
			b, first, err := AppendPayloads(nil, []Payload{p})
			require.NoError(t, err)
			require.Equal(t, p.Type(), first)
			ps, err := ParsePayloads(first, b)
			require.NoError(t, err)
			require.Equal(t, []Payload{p}, ps)
			again, _, err := AppendPayloads(nil, ps)
			require.NoError(t, err)
			require.Equal(t, b, again)
		})
	}
}

func TestRoundTripChain(t *testing.T) {
	ps := allPayloads()
	h := Header{SPIi: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, SPIr: [8]byte{9}, Version: 0x21,
		Exchange: IKEAuth, Flags: FlagResponse | 0x07, MessageID: 0xfedcba98}
	msg, err := Marshal(h, ps)
	require.NoError(t, err)
	h2, ps2, err := Parse(msg)
	require.NoError(t, err)
	h.NextPayload, h.Length = PayloadSA, uint32(len(msg))
	require.Equal(t, h, h2, "minor version and reserved flag bits survive")
	require.Equal(t, ps, ps2)
	require.True(t, h2.IsResponse())

	// The last payload being SK, its own NextPayload ends the chain.
	require.Equal(t, byte(PayloadIDi), msg[len(msg)-104])
}

func TestMarshalDefaultsAndEmpty(t *testing.T) {
	msg, err := Marshal(Header{Exchange: Informational}, nil)
	require.NoError(t, err)
	require.Len(t, msg, HeaderLen)
	require.Equal(t, byte(NoNext), msg[16])
	require.Equal(t, Version2, msg[17], "Version 0 is written as 2.0")
	h, ps, err := Parse(msg)
	require.NoError(t, err)
	require.Empty(t, ps)
	require.Equal(t, uint32(HeaderLen), h.Length)

	b, first, err := AppendPayloads([]byte{0xaa}, nil)
	require.NoError(t, err)
	require.Equal(t, NoNext, first)
	require.Equal(t, []byte{0xaa}, b)
}

func TestHeader(t *testing.T) {
	h := Header{SPIi: [8]byte{1}, SPIr: [8]byte{2}, NextPayload: PayloadSK, Version: Version2,
		Exchange: CreateChildSA, Flags: FlagInitiator, MessageID: 7, Length: 40}
	b := h.AppendTo([]byte{0xff})
	require.Len(t, b, 1+HeaderLen)
	b = b[1:]
	require.Equal(t, hx("0100000000000000 0200000000000000 2e 20 24 08 00000007 00000028"), b)
	msg := append(b, make([]byte, 12)...)
	got, err := ParseHeader(msg)
	require.NoError(t, err)
	require.Equal(t, h, got)

	PutLength(msg, 99)
	require.Equal(t, hx("00000063"), msg[24:28])
	_, err = ParseHeader(msg)
	require.ErrorIs(t, err, ErrLength)
	PutLength(msg[:10], 1) // too short: no-op, no panic
}

func TestFindAndNotifies(t *testing.T) {
	ps := allPayloads()
	ke, ok := Find[*KE](ps)
	require.True(t, ok)
	require.Equal(t, MODP2048, ke.Group, "the first KE")
	_, ok = Find[*Fragment](ps)
	require.False(t, ok)
	id, ok := Find[*ID](ps)
	require.True(t, ok)
	require.False(t, id.Responder)

	p, ok := FindType(ps, PayloadIDr)
	require.True(t, ok)
	require.Equal(t, IDIPv4Addr, p.(*ID).IDType)
	p, ok = FindType(ps, PayloadTSr)
	require.True(t, ok)
	require.True(t, p.(*TrafficSelectors).Responder)
	_, ok = FindType(ps, PayloadSKF)
	require.False(t, ok)

	ns := Notifies(ps)
	require.Len(t, ns, 3)
	require.Equal(t, NotifyCookie, ns[0].NotifyType)
	require.Equal(t, NotifyInvalidKEPayload, ns[2].NotifyType)
	require.Nil(t, Notifies(nil))

	n, ok := FindNotify(ps, NotifyRekeySA)
	require.True(t, ok)
	require.Equal(t, hx("deadbeef"), n.SPI)
	_, ok = FindNotify(ps, NotifyInitialContact)
	require.False(t, ok)
}

func TestFragmentRoundTrip(t *testing.T) {
	for _, f := range []*Fragment{
		{NextPayload: PayloadIDi, Number: 1, Total: 3, Body: fill(50, 1)},
		{Number: 3, Total: 3, Body: fill(20, 2)},
		{Number: 1, Total: 1},
	} {
		h := Header{Exchange: IKEAuth, Flags: FlagInitiator, MessageID: 1}
		msg, err := Marshal(h, []Payload{f})
		require.NoError(t, err)
		_, ps, err := Parse(msg)
		require.NoError(t, err)
		require.Equal(t, []Payload{f}, ps)
	}
}

func TestUnsupportedTransformAttributes(t *testing.T) {
	// Transforms that carry anything but one non-zero TV Key Length parse,
	// marked Unsupported with their attributes kept verbatim.
	for name, attrs := range map[string]string{
		"unknown TV":            "8001 0005",
		"TLV":                   "0003 0002 abcd",
		"two key lengths":       "800e 0080 800e 0100",
		"key length then other": "800e 0100 8002 0001",
		"zero key length":       "800e 0000",
		"TLV key length":        "000e 0002 0100",
		"empty TLV":             "0007 0000",
	} {
		t.Run(name, func(t *testing.T) {
			a := hx(attrs)
			sa := cat(hx("00 00"), be(uint16(8+8+len(a))), hx("01 01 00 01 00 00"), be(uint16(8+len(a))), hx("01 00 000c"), a)
			chain := cat(hx("00 00"), be(uint16(4+len(sa))), sa)
			ps, err := ParsePayloads(PayloadSA, chain)
			require.NoError(t, err)
			tr := ps[0].(*SA).Proposals[0].Transforms[0]
			require.True(t, tr.Unsupported)
			require.Equal(t, a, tr.RawAttributes)
			out, _, err := AppendPayloads(nil, ps)
			require.NoError(t, err)
			require.Equal(t, chain, out)
		})
	}
}

func be(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func TestEncodeErrors(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	var nilKE *KE
	tests := []struct {
		name string
		ps   []Payload
		want error
	}{
		{"nil interface", []Payload{nil}, ErrSyntax},
		{"typed nil", []Payload{nilKE}, ErrSyntax},
		{"SK not last", []Payload{&Encrypted{}, &Nonce{}}, ErrSyntax},
		{"SKF not last", []Payload{&Fragment{Number: 1, Total: 1}, &Nonce{}}, ErrSyntax},
		{"SKF number 0", []Payload{&Fragment{Number: 0, Total: 1}}, ErrSyntax},
		{"SKF number > total", []Payload{&Fragment{Number: 3, Total: 2}}, ErrSyntax},
		{"proposal SPI size", []Payload{&SA{Proposals: []Proposal{{SPI: []byte{1, 2, 3}}}}}, ErrSyntax},
		{"too many transforms", []Payload{&SA{Proposals: []Proposal{{Transforms: make([]Transform, 256)}}}}, ErrSyntax},
		{"bad raw attributes", []Payload{&SA{Proposals: []Proposal{{Transforms: []Transform{{RawAttributes: []byte{0, 1, 0}}}}}}}, ErrSyntax},
		{"notify SPI", []Payload{&Notify{SPI: make([]byte, 256)}}, ErrSyntax},
		{"delete SPI size", []Payload{&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3}}}}, ErrSyntax},
		{"delete size 0 with SPIs", []Payload{&Delete{Protocol: ProtoIKE, SPIs: [][]byte{nil}}}, ErrSyntax},
		{"mixed selector", []Payload{&TrafficSelectors{Selectors: []Selector{{Start: v4, End: v6}}}}, ErrSyntax},
		{"zero selector", []Payload{&TrafficSelectors{Selectors: []Selector{{}}}}, ErrSyntax},
		{"too many selectors", []Payload{&TrafficSelectors{Selectors: make([]Selector, 256)}}, ErrSyntax},
		{"attribute type", []Payload{&CP{Attributes: []Attribute{{Type: 0x8001}}}}, ErrSyntax},
		{"attribute value", []Payload{&CP{Attributes: []Attribute{{Type: 1, Value: make([]byte, 65536)}}}}, ErrLength},
		{"payload too long", []Payload{&Nonce{Data: make([]byte, 65532)}}, ErrLength},
		{"unknown with known type", []Payload{&Unknown{PayloadType: PayloadKE}}, ErrSyntax},
		{"unknown with type 0", []Payload{&Unknown{}}, ErrSyntax},
		{"foreign payload", []Payload{foreign{}}, ErrSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3}
			out, _, err := AppendPayloads(prefix, tc.ps)
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, prefix, out)
			_, err = Marshal(Header{}, tc.ps)
			require.ErrorIs(t, err, tc.want)
		})
	}
	// The largest payload that fits is fine.
	_, _, err := AppendPayloads(nil, []Payload{&Nonce{Data: make([]byte, 65531)}})
	require.NoError(t, err)
}

type foreign struct{}

func (foreign) Type() PayloadType { return 99 }

func TestStrings(t *testing.T) {
	require.Equal(t, "INVALID_KE_PAYLOAD", NotifyInvalidKEPayload.String())
	require.Equal(t, "IKEV2_FRAGMENTATION_SUPPORTED", NotifyFragmentationSupported.String())
	require.Equal(t, "ERROR(99)", NotifyType(99).String())
	require.Equal(t, "STATUS(40000)", NotifyType(40000).String())
	require.True(t, NotifyType(16383).IsError())
	require.False(t, NotifyInitialContact.IsError())
	require.True(t, NotifyChildSANotFound.IsError())
	require.Equal(t, "SKF", PayloadSKF.String())
	require.Equal(t, "PAYLOAD(99)", PayloadType(99).String())
	require.Equal(t, "IKE_AUTH", IKEAuth.String())
	require.Equal(t, "EXCHANGE(1)", ExchangeType(1).String())
	require.Equal(t, "ESP", ProtoESP.String())
	require.Equal(t, "DH", TransformDH.String())
	require.Equal(t, "ID_FQDN", IDFQDN.String())
	require.Equal(t, "DIGITAL_SIGNATURE", AuthDigitalSignature.String())
	require.Equal(t, "message: unsupported critical payload: payload type 99",
		(&UnsupportedCriticalError{Type: 99}).Error())
	require.True(t, errors.Is(&UnsupportedCriticalError{}, ErrUnsupportedCritical))
}
