package esp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// within reports whether sub lies inside p[:len(p)].
func within(sub, p []byte) bool {
	if len(sub) == 0 {
		return true
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return s >= base && s+uintptr(len(sub)) <= base+uintptr(len(p))
}

var openErrors = []error{ErrShort, ErrSPI, ErrReplay, ErrAuthentication, ErrPadding, ErrDummy, ErrNextHeader, ErrInnerLength}

type fuzzCase struct {
	suite string
	esn   bool
}

var fuzzCases = []fuzzCase{
	{"AES-GCM-128", false}, {"AES-GCM-256", true}, {"ChaCha20-Poly1305", false},
	{"AES-CBC-128/SHA256", false}, {"AES-CBC-256/SHA512", true},
}

// FuzzOpen feeds arbitrary bytes to Open of fixed SAs (as is, and with the
// SA's SPI patched in so that the fuzzer gets past the SPI check), which
// must return a known sentinel or an inner packet inside the input, and
// never panic. It also flips bits in one byte of a freshly sealed packet,
// which must always fail: in the SPI with ErrSPI, in the sequence number
// with ErrAuthentication or (number 0, or outside the ESN window) ErrReplay,
// anywhere else with ErrAuthentication.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, uint(0), byte(1))
	f.Add([]byte{0xFF}, uint(3), byte(0x80))
	f.Add(make([]byte, 40), uint(5), byte(0xFF))
	for _, fc := range fuzzCases {
		s := suiteByName(f, fc.suite)
		o, _ := pair(f, s, fc.esn, true)
		for _, inner := range [][]byte{ipv4Packet(20), ipv6Packet(41), {0x45}} {
			f.Add(seal(f, o, inner), uint(len(inner)), byte(1))
		}
		f.Add(rawSeal(f, s, fc.esn, 1, trailer(nil, s.align(), 59)), uint(20), byte(4))
	}
	f.Fuzz(func(t *testing.T, data []byte, pos uint, flip byte) {
		for _, fc := range fuzzCases {
			s := suiteByName(t, fc.suite)
			o, in := pair(t, s, fc.esn, true)
			for _, patch := range []bool{false, true} {
				pkt := bytes.Clone(data)
				if patch && len(pkt) >= 4 {
					binary.BigEndian.PutUint32(pkt, testSPI)
				}
				inner, _, err := in.Open(pkt)
				if err != nil {
					known := false
					for _, e := range openErrors {
						known = known || err == e
					}
					if !known || inner != nil {
						t.Fatalf("%s: unexpected result %v, %d bytes", fc.suite, err, len(inner))
					}
				} else if !within(inner, pkt) || len(inner) < 20 {
					t.Fatalf("%s: inner packet of %d bytes outside the packet", fc.suite, len(inner))
				}
			}

			// One mutated byte of a genuine packet never opens.
			_, fresh := pair(t, s, fc.esn, true)
			pkt := seal(t, o, ipv6Packet(40+len(data)%64))
			i := int(pos % uint(len(pkt)))
			if flip == 0 {
				flip = 1
			}
			pkt[i] ^= flip
			_, _, err := fresh.Open(pkt)
			var ok bool
			switch {
			case i < 4:
				ok = errors.Is(err, ErrSPI)
			case i < 8:
				ok = errors.Is(err, ErrAuthentication) || errors.Is(err, ErrReplay)
			default:
				ok = errors.Is(err, ErrAuthentication)
			}
			if !ok {
				t.Fatalf("%s: byte %d ^ %#x: Open returned %v", fc.suite, i, flip, err)
			}
		}
	})
}
