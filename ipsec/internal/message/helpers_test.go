package message

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// hx decodes hex with any whitespace in between, so that test vectors can be
// laid out like the annotated dumps of the notes.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err) // test vectors are constants: a typo is a bug in the test
	}
	return b
}

// fill returns n bytes standing in for a value the notes elide (nonce, KE
// data, hash, certificate): any bytes of the stated length will do, a
// pattern makes misplaced slices visible.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Elided values of the golden messages.
var (
	initKEData = fill(64, 0x40)
	initNonce  = fill(32, 0x90)
	natdSrc    = fill(20, 0xb0)
	natdDst    = fill(20, 0xd0)
)

// goldenInitRequest is strongSwan 5.9.8's IKE_SA_INIT request of notes
// section 3.1, byte for byte as annotated (332 bytes).
func goldenInitRequest() []byte {
	return cat(
		hx(`ce9c57a8a544d797 0000000000000000
		    21 20 22 08 00000000 0000014c`),
		hx(`22 00 006c
		    02 00 0034 01 01 00 05
		      03 00 000c 01 00 0014 800e0100
		      03 00 0008 02 00 0005
		      03 00 0008 04 00 0013
		      03 00 0008 04 00 001f
		      00 00 0008 04 00 000e
		    00 00 0034 02 01 00 05
		      03 00 000c 01 00 000c 800e0100
		      03 00 0008 03 00 000c
		      03 00 0008 02 00 0005
		      03 00 0008 04 00 0013
		      00 00 0008 04 00 000e`),
		hx(`28 00 0048 0013 0000`), initKEData,
		hx(`29 00 0024`), initNonce,
		hx(`29 00 001c 00 00 4004`), natdSrc,
		hx(`29 00 001c 00 00 4005`), natdDst,
		hx(`29 00 0008 00 00 402e`),
		hx(`29 00 0010 00 00 402f 0002 0003 0004 0005`),
		hx(`00 00 0008 00 00 4016`),
	)
}

// Elided values of the IKE_AUTH chain. The notes call the certificate
// "476 B DER" but its payload length is 0x01e0 = 480 = 4 + 1 + 475: the
// length field is what is on the wire, so the certificate has 475 bytes.
var (
	authCert    = fill(475, 0x30)
	authCAHash  = fill(20, 0x70)
	authAlgID   = hx(`300a06082a8648ce3d040302`) // ecdsa-with-SHA256
	authSig     = fill(70, 0xc0)
	authESPSPI  = hx(`8abf0628`)
	authCertLen = 475
)

// goldenAuthInner is the decrypted payload chain of strongSwan's IKE_AUTH
// request, notes section 5.1 (first payload IDi).
func goldenAuthInner() []byte {
	return cat(
		hx(`25 00 0010 02 000000`), []byte("ini.test"),
		hx(`29 00 01e0 04`), authCert,
		hx(`26 00 0008 00 00 4000`),
		hx(`24 00 0019 04`), authCAHash,
		hx(`27 00 0011 02 000000`), []byte("resp.test"),
		hx(`2f 00 005b 0e 000000 0c`), authAlgID, authSig,
		hx(`21 00 000c 01 000000 0001 0000`),
		hx(`2c 00 009c
		    02 00 0038 01 03 04 04 8abf0628
		      03 00 000c 01 00 0014 800e0080
		      03 00 000c 01 00 0014 800e00c0
		      03 00 000c 01 00 0014 800e0100
		      00 00 0008 05 00 0000
		    00 00 0060 02 03 04 09 8abf0628
		      03 00 000c 01 00 000c 800e0080
		      03 00 000c 01 00 000c 800e00c0
		      03 00 000c 01 00 000c 800e0100
		      03 00 0008 03 00 000c
		      03 00 0008 03 00 000d
		      03 00 0008 03 00 000e
		      03 00 0008 03 00 0002
		      03 00 0008 03 00 0005
		      00 00 0008 05 00 0000`),
		hx(`2d 00 0018 01 000000 07 00 0010 0000 ffff 00000000 ffffffff`),
		hx(`29 00 0018 01 000000 07 00 0010 0000 ffff 0ae80000 0ae800ff`),
		hx(`29 00 0008 00 00 400c`),
		hx(`29 00 0008 00 00 400f`),
		hx(`29 00 0008 00 00 4014`),
		hx(`29 00 0008 00 00 4021`),
		hx(`00 00 0008 00 00 4024`),
	)
}

// goldenCPReply is strongSwan's CP reply of notes section 5.5. Its Next
// Payload is SA (0x21), so an empty SA payload is appended to make it a
// complete chain.
func goldenCPReply() []byte {
	return cat(hx(`21 00 0010 02 000000 0001 0004 0ae90001`), hx(`00 00 0004`))
}

// goldenAuthMessage wraps the IKE_AUTH chain in a header as if it were sent
// in the clear: an IKE_AUTH-sized message for benchmarks and fuzz seeds.
func goldenAuthMessage(tb testing.TB) []byte {
	tb.Helper()
	inner := goldenAuthInner()
	h := hx(`ce9c57a8a544d797 1122334455667788 23 20 23 08 00000001 00000000`)
	h[16] = byte(PayloadIDi)
	msg := cat(h, inner)
	PutLength(msg, uint32(len(msg)))
	return msg
}

// goldenInformational is an INFORMATIONAL request carrying an SK payload
// whose ciphertext is opaque here.
func goldenInformational() []byte {
	msg := cat(
		hx(`ce9c57a8a544d797 1122334455667788 2e 20 25 00 00000002 00000000`),
		hx(`00 00 0021`), fill(29, 0x11), // SK: next NoNext (DPD), IV|ct|ICV
	)
	PutLength(msg, uint32(len(msg)))
	return msg
}

// normalize returns a copy of the payload chain b, which must have parsed
// successfully from first, with exactly the bits cleared that the parser
// ignores and the encoder writes as zero: the critical bit of known payload
// types, the reserved bits of every generic header, and the reserved fields
// of KE, AUTH, TS, CP, proposal and transform substructures and CP attribute
// types. ID reserved octets are kept (the codec preserves them for AUTH).
// It is an independent walk of the structure, used as the oracle of the
// fuzz targets: Marshal(Parse(b)) must equal normalize(b).
func normalize(first PayloadType, b []byte) []byte {
	out := bytes.Clone(b)
	next := first
	off := 0
	for next != NoNext {
		typ := next
		next = PayloadType(out[off])
		n := int(binary.BigEndian.Uint16(out[off+2:]))
		if typ.known() {
			out[off+1] = 0
		} else {
			out[off+1] &= criticalBit
		}
		body := out[off+4 : off+n]
		switch typ {
		case PayloadKE:
			clear(body[2:4])
		case PayloadAUTH, PayloadTSi, PayloadTSr:
			clear(body[1:4])
		case PayloadCP:
			clear(body[1:4])
			for a := body[4:]; len(a) > 0; {
				a[0] &= 0x7f
				a = a[4+int(binary.BigEndian.Uint16(a[2:])):]
			}
		case PayloadSA:
			for p := body; len(p) > 0; {
				pn := int(binary.BigEndian.Uint16(p[2:]))
				p[1] = 0
				for t := p[8+int(p[6]) : pn]; len(t) > 0; {
					t[1], t[5] = 0, 0
					t = t[binary.BigEndian.Uint16(t[2:]):]
				}
				p = p[pn:]
			}
		}
		off += n
		if typ == PayloadSK || typ == PayloadSKF {
			break
		}
	}
	return out
}
