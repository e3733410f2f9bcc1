package message

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// pl builds a generic payload with a correct length.
func pl(next PayloadType, flags byte, body []byte) []byte {
	return cat([]byte{byte(next), flags}, be(uint16(4+len(body))), body)
}

// prop builds a proposal substructure with a correct length.
func prop(last, count byte, spi []byte, transforms ...[]byte) []byte {
	rest := cat(append([]byte{1, byte(ProtoIKE), byte(len(spi)), count}, spi...), cat(transforms...))
	return cat([]byte{last, 0}, be(uint16(4+len(rest))), rest)
}

// tr builds a transform substructure with a correct length.
func tr(last byte, attrs []byte) []byte {
	return cat([]byte{last, 0}, be(uint16(8+len(attrs))), hx("01 00 000c"), attrs)
}

var kl256 = hx("800e 0100")

func TestParseHeaderErrors(t *testing.T) {
	good := goldenInitRequest()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"27 bytes", good[:27], ErrShort},
		{"IKEv1 version", mod(func(b []byte) []byte { b[17] = 0x10; return b }), ErrVersion},
		{"IKEv3 version", mod(func(b []byte) []byte { b[17] = 0x30; return b }), ErrVersion},
		{"length too big", mod(func(b []byte) []byte { PutLength(b, 333); return b }), ErrLength},
		{"length too small", mod(func(b []byte) []byte { PutLength(b, 331); return b }), ErrLength},
		{"length below header", mod(func(b []byte) []byte { PutLength(b, 20); return b[:28] }), ErrLength},
		{"huge length", mod(func(b []byte) []byte { PutLength(b, 0xffffffff); return b }), ErrLength},
		{"truncated datagram", good[:300], ErrLength},
		{"trailing garbage", append(append([]byte(nil), good...), 0), ErrLength},
		{"marker not stripped", append([]byte{0, 0, 0, 0}, good...), ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(tc.msg)
			require.ErrorIs(t, err, tc.want)
			require.Contains(t, err.Error(), "message: ")
		})
	}
}

func TestParsePayloadsErrors(t *testing.T) {
	ipv4TS := hx("07 00 0010 0000 ffff 0a000000 0a0000ff")
	tests := []struct {
		name  string
		first PayloadType
		b     []byte
		want  error
	}{
		// Generic chain.
		{"missing payload", PayloadKE, nil, ErrShort},
		{"truncated generic header", PayloadKE, hx("00 00 00"), ErrShort},
		{"next payload missing", PayloadNonce, pl(PayloadKE, 0, fill(16, 0)), ErrShort},
		{"length 3", PayloadNonce, hx("00 00 0003 00"), ErrLength},
		{"length 0", PayloadNonce, hx("00 00 0000"), ErrLength},
		{"length past end", PayloadNonce, hx("00 00 0009 0102 0304"), ErrLength},
		{"trailing bytes", PayloadNonce, cat(pl(NoNext, 0, fill(16, 0)), []byte{0}), ErrLength},
		{"bytes but no first payload", NoNext, hx("00 00 0004"), ErrLength},
		{"bytes after SK", PayloadSK, cat(pl(PayloadIDi, 0, fill(20, 0)), pl(NoNext, 0, nil)), ErrLength},
		{"bytes after SKF", PayloadSKF, cat(pl(PayloadIDi, 0, hx("0001 0002")), []byte{1}), ErrLength},

		// Fixed parts of bodies.
		{"KE short", PayloadKE, pl(NoNext, 0, hx("0013 00")), ErrSyntax},
		{"IDi short", PayloadIDi, pl(NoNext, 0, hx("02 0000")), ErrSyntax},
		{"IDr short", PayloadIDr, pl(NoNext, 0, hx("02")), ErrSyntax},
		{"AUTH short", PayloadAUTH, pl(NoNext, 0, hx("02 0000")), ErrSyntax},
		{"CERT empty", PayloadCERT, pl(NoNext, 0, nil), ErrSyntax},
		{"CERTREQ empty", PayloadCERTREQ, pl(NoNext, 0, nil), ErrSyntax},
		{"Notify short", PayloadNotify, pl(NoNext, 0, hx("00 00 40")), ErrSyntax},
		{"Notify SPI past body", PayloadNotify, pl(NoNext, 0, hx("03 05 4009 01020304")), ErrSyntax},
		{"Notify SPI size 255", PayloadNotify, pl(NoNext, 0, hx("03 ff 4009")), ErrSyntax},
		{"SKF short", PayloadSKF, pl(NoNext, 0, hx("0001 00")), ErrSyntax},
		{"SKF number 0", PayloadSKF, pl(NoNext, 0, hx("0000 0002")), ErrSyntax},
		{"SKF number > total", PayloadSKF, pl(NoNext, 0, hx("0003 0002")), ErrSyntax},

		// Delete.
		{"Delete short", PayloadDelete, pl(NoNext, 0, hx("03 04 00")), ErrSyntax},
		{"Delete fewer SPI bytes", PayloadDelete, pl(NoNext, 0, hx("03 04 0002 01020304")), ErrSyntax},
		{"Delete more SPI bytes", PayloadDelete, pl(NoNext, 0, hx("03 04 0001 0102030405")), ErrSyntax},
		{"Delete size 0 with count", PayloadDelete, pl(NoNext, 0, hx("01 00 0001")), ErrSyntax},
		{"Delete size 0 with bytes", PayloadDelete, pl(NoNext, 0, hx("01 00 0000 01")), ErrSyntax},
		{"Delete count overflow", PayloadDelete, pl(NoNext, 0, hx("03 ff ffff 01")), ErrSyntax},

		// Traffic selectors.
		{"TS short", PayloadTSi, pl(NoNext, 0, hx("01 0000")), ErrSyntax},
		{"TS count too high", PayloadTSi, pl(NoNext, 0, cat(hx("02 000000"), ipv4TS)), ErrSyntax},
		{"TS count too low", PayloadTSr, pl(NoNext, 0, cat(hx("01 000000"), ipv4TS, ipv4TS)), ErrSyntax},
		{"TS count 0 with bytes", PayloadTSr, pl(NoNext, 0, cat(hx("00 000000"), ipv4TS)), ErrSyntax},
		{"TS type 9", PayloadTSi, pl(NoNext, 0, hx("01 000000 09 00 0010 0000 ffff 0a000000 0a0000ff")), ErrSyntax},
		{"TS IPv4 length 40", PayloadTSi, pl(NoNext, 0, cat(hx("01 000000 07 00 0028 0000 ffff"), fill(32, 0))), ErrSyntax},
		{"TS IPv6 length 16", PayloadTSi, pl(NoNext, 0, hx("01 000000 08 00 0010 0000 ffff 0a000000 0a0000ff")), ErrSyntax},
		{"TS truncated selector", PayloadTSi, pl(NoNext, 0, hx("01 000000 07 00 0010 0000 ffff 0a00")), ErrSyntax},
		{"TS selector header cut", PayloadTSi, pl(NoNext, 0, hx("01 000000 07 00")), ErrSyntax},

		// Configuration payload.
		{"CP short", PayloadCP, pl(NoNext, 0, hx("01 0000")), ErrSyntax},
		{"CP attribute header cut", PayloadCP, pl(NoNext, 0, hx("01 000000 0001 00")), ErrSyntax},
		{"CP attribute past end", PayloadCP, pl(NoNext, 0, hx("01 000000 0001 0004 0a00")), ErrSyntax},

		// SA: proposals.
		{"SA proposal header cut", PayloadSA, pl(NoNext, 0, hx("00 00 0008 01 01")), ErrSyntax},
		{"SA proposal length 7", PayloadSA, pl(NoNext, 0, hx("00 00 0007 01 01 00 00")), ErrSyntax},
		{"SA proposal past end", PayloadSA, pl(NoNext, 0, hx("00 00 0010 01 01 00 00")), ErrSyntax},
		{"SA last proposal says more", PayloadSA, pl(NoNext, 0, prop(2, 1, nil, tr(0, kl256))), ErrSyntax},
		{"SA proposal says last", PayloadSA, pl(NoNext, 0, cat(prop(0, 1, nil, tr(0, nil)), prop(0, 1, nil, tr(0, nil)))), ErrSyntax},
		{"SA proposal last 1", PayloadSA, pl(NoNext, 0, prop(1, 1, nil, tr(0, nil))), ErrSyntax},
		{"SA SPI size 3", PayloadSA, pl(NoNext, 0, prop(0, 1, []byte{1, 2, 3}, tr(0, nil))), ErrSyntax},
		{"SA SPI past proposal", PayloadSA, pl(NoNext, 0, hx("00 00 000c 01 03 08 00 01020304")), ErrSyntax},

		// SA: transforms.
		{"SA missing transform", PayloadSA, pl(NoNext, 0, prop(0, 2, nil, tr(3, nil))), ErrSyntax},
		{"SA extra transform bytes", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, tr(0, nil), tr(0, nil))), ErrSyntax},
		{"SA zero count with bytes", PayloadSA, pl(NoNext, 0, prop(0, 0, nil, tr(0, nil))), ErrSyntax},
		{"SA transform cut", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, hx("00 00 0008 01"))), ErrSyntax},
		{"SA transform length 4", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, hx("00 00 0004 01 00 000c"))), ErrSyntax},
		{"SA transform past proposal", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, hx("00 00 0010 01 00 000c"))), ErrSyntax},
		{"SA last transform says more", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, tr(3, nil))), ErrSyntax},
		{"SA transform says last", PayloadSA, pl(NoNext, 0, prop(0, 2, nil, tr(0, nil), tr(0, nil))), ErrSyntax},
		{"SA transform last 2", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, tr(2, nil))), ErrSyntax},
		{"SA attribute cut", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, tr(0, hx("800e 01")))), ErrSyntax},
		{"SA TLV attribute past end", PayloadSA, pl(NoNext, 0, prop(0, 1, nil, tr(0, hx("0001 0004 0102")))), ErrSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := ParsePayloads(tc.first, tc.b)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, ps)
			// The same chain behind a header fails the same way.
			msg := cat(hx("0102030405060708 0000000000000000 00 20 22 08 00000000 00000000"), tc.b)
			msg[16] = byte(tc.first)
			PutLength(msg, uint32(len(msg)))
			h, _, err := Parse(msg)
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, IKESAInit, h.Exchange, "header returned with payload errors")
		})
	}
}

func TestCriticalBit(t *testing.T) {
	nonce := pl(NoNext, 0, fill(16, 0))

	t.Run("unknown critical", func(t *testing.T) {
		b := cat(pl(PayloadNonce, 0x80, hx("0102")), nonce)
		_, err := ParsePayloads(99, b)
		require.ErrorIs(t, err, ErrUnsupportedCritical)
		var uc *UnsupportedCriticalError
		require.True(t, errors.As(err, &uc))
		require.Equal(t, PayloadType(99), uc.Type)
		// A later critical unknown payload is found too.
		_, err = ParsePayloads(PayloadNonce, cat(pl(49, 0, fill(16, 0)), pl(NoNext, 0xff, nil)))
		require.True(t, errors.As(err, &uc))
		require.Equal(t, PayloadType(49), uc.Type)
	})

	t.Run("unknown not critical", func(t *testing.T) {
		b := cat(pl(PayloadNonce, 0x7f, hx("0102")), nonce)
		ps, err := ParsePayloads(99, b)
		require.NoError(t, err)
		require.Equal(t, &Unknown{PayloadType: 99, Data: hx("0102")}, ps[0])
		require.Equal(t, PayloadNonce, ps[1].Type())
		// Re-encoded with the reserved bits cleared.
		out, _, err := AppendPayloads(nil, ps)
		require.NoError(t, err)
		b[1] = 0
		require.Equal(t, b, out)
	})

	t.Run("unknown critical kept when encoding", func(t *testing.T) {
		out, first, err := AppendPayloads(nil, []Payload{&Unknown{PayloadType: 99, Critical: true, Data: []byte{1}}})
		require.NoError(t, err)
		require.Equal(t, PayloadType(99), first)
		require.Equal(t, hx("00 80 0005 01"), out)
		_, err = ParsePayloads(first, out)
		require.ErrorIs(t, err, ErrUnsupportedCritical)
	})

	t.Run("known payload with critical bit", func(t *testing.T) {
		for _, typ := range []PayloadType{PayloadSA, PayloadKE, PayloadNonce, PayloadNotify, PayloadSK} {
			var body []byte
			switch typ {
			case PayloadKE:
				body = hx("0013 0000 0102")
			case PayloadNotify:
				body = hx("00 00 4000")
			}
			b := pl(NoNext, 0x80, body)
			ps, err := ParsePayloads(typ, b)
			require.NoError(t, err, "RFC 7296 §2.5: the critical bit only matters for unknown types")
			require.Equal(t, typ, ps[0].Type())
			out, _, err := AppendPayloads(nil, ps)
			require.NoError(t, err)
			b[1] = 0
			require.Equal(t, b, out)
		}
	})
}

func TestReservedFieldsIgnored(t *testing.T) {
	// Non-zero reserved fields parse (RFC 7296: ignore on receipt) and are
	// written as zero, except in ID payloads, whose body AUTH covers as sent.
	chain := cat(
		pl(PayloadIDi, 0x01, hx("0013 ffff 0102")),                            // KE
		pl(PayloadAUTH, 0, hx("02 abcdef 6869")),                              // IDi
		pl(PayloadCP, 0, hx("02 010203 aabb")),                                // AUTH
		pl(PayloadSA, 0, hx("02 ffffff 8001 0000")),                           // CP, attribute R bit
		pl(PayloadTSi, 0, hx("00 ff 0010 01 01 00 01 00 ff 0008 01 ff 000c")), // SA
		pl(NoNext, 0, hx("00 ffffff")),                                        // TSi
	)
	ps, err := ParsePayloads(PayloadKE, chain)
	require.NoError(t, err)
	require.Equal(t, &KE{Group: ECP256, Data: hx("0102")}, ps[0])
	id := ps[1].(*ID)
	require.Equal(t, hx("02 abcdef 6869"), id.Body())
	require.Equal(t, &CP{CfgType: CfgReply, Attributes: []Attribute{{Type: 1}}}, ps[3])
	require.Equal(t, Transform{Type: TransformEncr, ID: EncrAESCBC}, ps[4].(*SA).Proposals[0].Transforms[0])

	out, first, err := AppendPayloads(nil, ps)
	require.NoError(t, err)
	require.Equal(t, PayloadKE, first)
	require.Equal(t, normalize(PayloadKE, chain), out)
	require.Equal(t, cat(
		pl(PayloadIDi, 0, hx("0013 0000 0102")),
		pl(PayloadAUTH, 0, hx("02 abcdef 6869")),
		pl(PayloadCP, 0, hx("02 000000 aabb")),
		pl(PayloadSA, 0, hx("02 000000 0001 0000")),
		pl(PayloadTSi, 0, hx("00 00 0010 01 01 00 01 00 00 0008 01 00 000c")),
		pl(NoNext, 0, hx("00 000000")),
	), out)
}
