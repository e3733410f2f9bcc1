package message

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGoldenIKESAInitRequest(t *testing.T) {
	msg := goldenInitRequest()
	require.Len(t, msg, 332)

	h, ps, err := Parse(msg)
	require.NoError(t, err)
	require.Equal(t, Header{
		SPIi:        [8]byte(hx("ce9c57a8a544d797")),
		NextPayload: PayloadSA,
		Version:     Version2,
		Exchange:    IKESAInit,
		Flags:       FlagInitiator,
		MessageID:   0,
		Length:      332,
	}, h)
	require.True(t, h.IsInitiator())
	require.False(t, h.IsResponse())

	types := make([]PayloadType, len(ps))
	for i, p := range ps {
		types[i] = p.Type()
	}
	require.Equal(t, []PayloadType{PayloadSA, PayloadKE, PayloadNonce,
		PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify, PayloadNotify}, types)

	require.Equal(t, &SA{Proposals: []Proposal{
		{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			{Type: TransformEncr, ID: EncrAESGCM16, KeyLength: 256},
			{Type: TransformPRF, ID: PRFHMACSHA256},
			{Type: TransformDH, ID: ECP256},
			{Type: TransformDH, ID: Curve25519},
			{Type: TransformDH, ID: MODP2048},
		}},
		{Number: 2, Protocol: ProtoIKE, Transforms: []Transform{
			{Type: TransformEncr, ID: EncrAESCBC, KeyLength: 256},
			{Type: TransformInteg, ID: IntegHMACSHA256_128},
			{Type: TransformPRF, ID: PRFHMACSHA256},
			{Type: TransformDH, ID: ECP256},
			{Type: TransformDH, ID: MODP2048},
		}},
	}}, ps[0])

	ke, ok := Find[*KE](ps)
	require.True(t, ok)
	require.Equal(t, ECP256, ke.Group)
	require.Equal(t, initKEData, ke.Data)

	nonce, ok := Find[*Nonce](ps)
	require.True(t, ok)
	require.Equal(t, initNonce, nonce.Data)

	ns := Notifies(ps)
	require.Len(t, ns, 5)
	require.Equal(t, &Notify{NotifyType: NotifyNATDetectionSourceIP, Data: natdSrc}, ns[0])
	require.Equal(t, &Notify{NotifyType: NotifyNATDetectionDestinationIP, Data: natdDst}, ns[1])
	require.Equal(t, &Notify{NotifyType: NotifyFragmentationSupported}, ns[2])
	require.Equal(t, &Notify{NotifyType: NotifySignatureHashAlgorithms, Data: hx("0002 0003 0004 0005")}, ns[3])
	require.Equal(t, &Notify{NotifyType: NotifyRedirectSupported}, ns[4])
	for _, n := range ns {
		require.False(t, n.NotifyType.IsError())
	}

	// Re-encoding gives the received bytes: the parse lost nothing.
	out, err := Marshal(h, ps)
	require.NoError(t, err)
	require.Equal(t, msg, out)

	// Parsed fields alias the datagram (no copies), with clipped capacity.
	require.Same(t, &msg[28+108+8], &ke.Data[0])
	require.Equal(t, len(ke.Data), cap(ke.Data))
}

func TestGoldenIKEAuthInner(t *testing.T) {
	inner := goldenAuthInner()
	ps, err := ParsePayloads(PayloadIDi, inner)
	require.NoError(t, err)
	require.Len(t, ps, 15)

	idi := ps[0].(*ID)
	require.Equal(t, PayloadIDi, idi.Type())
	require.Equal(t, IDFQDN, idi.IDType)
	require.Equal(t, "ini.test", string(idi.Data))
	require.Equal(t, cat(hx("02 000000"), []byte("ini.test")), idi.Body())

	cert := ps[1].(*Cert)
	require.Equal(t, CertX509Signature, cert.Encoding)
	require.Len(t, cert.Data, authCertLen)
	require.Equal(t, authCert, cert.Data)

	require.Equal(t, &Notify{NotifyType: NotifyInitialContact}, ps[2])
	require.Equal(t, &CertReq{Encoding: CertX509Signature, Data: authCAHash}, ps[3])

	idr := ps[4].(*ID)
	require.True(t, idr.Responder)
	require.Equal(t, PayloadIDr, idr.Type())
	require.Equal(t, "resp.test", string(idr.Data))

	auth := ps[5].(*Auth)
	require.Equal(t, AuthDigitalSignature, auth.Method)
	require.Equal(t, cat([]byte{12}, authAlgID, authSig), auth.Data)

	require.Equal(t, &CP{CfgType: CfgRequest, Attributes: []Attribute{{Type: AttrInternalIP4Address}}}, ps[6])

	sa := ps[7].(*SA)
	require.Len(t, sa.Proposals, 2)
	p1, p2 := sa.Proposals[0], sa.Proposals[1]
	require.Equal(t, Proposal{Number: 1, Protocol: ProtoESP, SPI: authESPSPI, Transforms: []Transform{
		{Type: TransformEncr, ID: EncrAESGCM16, KeyLength: 128},
		{Type: TransformEncr, ID: EncrAESGCM16, KeyLength: 192},
		{Type: TransformEncr, ID: EncrAESGCM16, KeyLength: 256},
		{Type: TransformESN, ID: ESNNo},
	}}, p1)
	require.Equal(t, uint8(2), p2.Number)
	require.Equal(t, authESPSPI, p2.SPI)
	require.Len(t, p2.Transforms, 9)
	require.Equal(t, Transform{Type: TransformInteg, ID: IntegHMACSHA1_96}, p2.Transforms[6])
	require.Equal(t, Transform{Type: TransformESN, ID: ESNNo}, p2.Transforms[8])

	all := Selector{StartPort: 0, EndPort: 65535,
		Start: netip.MustParseAddr("0.0.0.0"), End: netip.MustParseAddr("255.255.255.255")}
	require.Equal(t, &TrafficSelectors{Selectors: []Selector{all}}, ps[8])
	require.Equal(t, &TrafficSelectors{Responder: true, Selectors: []Selector{{EndPort: 65535,
		Start: netip.MustParseAddr("10.232.0.0"), End: netip.MustParseAddr("10.232.0.255")}}}, ps[9])
	require.Equal(t, PayloadTSr, ps[9].Type())

	var got []NotifyType
	for _, n := range Notifies(ps[10:]) {
		got = append(got, n.NotifyType)
	}
	require.Equal(t, []NotifyType{NotifyMOBIKESupported, NotifyNoAdditionalAddresses,
		NotifyMultipleAuthSupported, NotifyEAPOnlyAuthentication, NotifyIKEv2MessageIDSyncSupported}, got)

	out, first, err := AppendPayloads(nil, ps)
	require.NoError(t, err)
	require.Equal(t, PayloadIDi, first)
	require.Equal(t, inner, out)
}

func TestGoldenCPReply(t *testing.T) {
	b := goldenCPReply()
	ps, err := ParsePayloads(PayloadCP, b)
	require.NoError(t, err)
	require.Equal(t, []Payload{
		&CP{CfgType: CfgReply, Attributes: []Attribute{{Type: AttrInternalIP4Address, Value: hx("0ae90001")}}},
		&SA{},
	}, ps)
	out, first, err := AppendPayloads(nil, ps)
	require.NoError(t, err)
	require.Equal(t, PayloadCP, first)
	require.Equal(t, b, out)

	// On its own the CP announces an SA that is not there.
	_, err = ParsePayloads(PayloadCP, b[:16])
	require.ErrorIs(t, err, ErrShort)
}

func TestGoldenEncryptedIsLast(t *testing.T) {
	msg := goldenInformational()
	h, ps, err := Parse(msg)
	require.NoError(t, err)
	require.Equal(t, Informational, h.Exchange)
	require.Len(t, ps, 1)
	sk := ps[0].(*Encrypted)
	require.Equal(t, NoNext, sk.NextPayload)
	require.Equal(t, fill(29, 0x11), sk.Body)
	// The SK body is the tail of the message: callers compute the AAD /
	// checksum input as msg[:len(msg)-len(Body)].
	require.Same(t, &msg[len(msg)-len(sk.Body)], &sk.Body[0])
	out, err := Marshal(h, ps)
	require.NoError(t, err)
	require.Equal(t, msg, out)
}
