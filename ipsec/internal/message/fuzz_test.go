package message

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// The fuzz targets check, besides "no panic", that the parser is strict:
// whatever it accepts re-encodes to the same bytes, up to the bits RFC 7296
// says to ignore on receipt (critical bit of known payloads, reserved bits
// and fields), which the parser accepts and the encoder zeroes. Those are
// cleared by normalize, an independent walk of the structure, before the
// comparison. Everything else that could be encoded in two ways (the
// "last" markers, counts, a Key Length of 0, unknown transform attributes,
// SPI sizes) is either refused by the parser or kept verbatim.

var sentinels = []error{ErrShort, ErrVersion, ErrLength, ErrSyntax, ErrUnsupportedCritical}

func requireSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

// requireBytes compares byte strings, nil and empty being equal (an empty
// chain encodes to nil).
func requireBytes(t *testing.T, want, got []byte) {
	t.Helper()
	if !bytes.Equal(want, got) {
		require.Equal(t, want, got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(goldenInitRequest())
	f.Add(goldenAuthMessage(f))
	f.Add(goldenInformational())
	if msg, err := Marshal(Header{Exchange: IKEAuth, MessageID: 1}, allPayloads()); err == nil {
		f.Add(msg)
	}
	if msg, err := Marshal(Header{Exchange: IKEAuth, MessageID: 1},
		[]Payload{&Fragment{NextPayload: PayloadIDi, Number: 1, Total: 2, Body: fill(40, 0)}}); err == nil {
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
		// Mutations rarely keep the Length field right; also try each
		// input with it patched so that the fuzzer reaches the payloads.
		if len(data) >= HeaderLen {
			fixed := append([]byte(nil), data...)
			PutLength(fixed, uint32(len(fixed)))
			checkParse(t, fixed)
		}
	})
}

func checkParse(t *testing.T, data []byte) {
	h, ps, err := Parse(data)
	if err != nil {
		requireSentinel(t, err)
		return
	}
	out, err := Marshal(h, ps)
	require.NoError(t, err)
	want := cat(data[:HeaderLen], normalize(h.NextPayload, data[HeaderLen:]))
	requireBytes(t, want, out)

	h2, ps2, err := Parse(out)
	require.NoError(t, err)
	require.Equal(t, h, h2)
	require.Equal(t, ps, ps2)
}

func FuzzParsePayloads(f *testing.F) {
	f.Add(cat([]byte{byte(PayloadIDi)}, goldenAuthInner()))
	f.Add(cat([]byte{byte(PayloadSA)}, goldenInitRequest()[HeaderLen:]))
	f.Add(cat([]byte{byte(PayloadCP)}, goldenCPReply()))
	for _, p := range allPayloads() {
		if b, first, err := AppendPayloads(nil, []Payload{p}); err == nil {
			f.Add(cat([]byte{byte(first)}, b))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		first, b := PayloadType(data[0]), data[1:]
		ps, err := ParsePayloads(first, b)
		if err != nil {
			requireSentinel(t, err)
			return
		}
		out, gotFirst, err := AppendPayloads(nil, ps)
		require.NoError(t, err)
		require.Equal(t, first, gotFirst)
		requireBytes(t, normalize(first, b), out)

		ps2, err := ParsePayloads(first, out)
		require.NoError(t, err)
		require.Equal(t, ps, ps2)
	})
}
