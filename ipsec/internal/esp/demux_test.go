package esp

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassify(t *testing.T) {
	ike := append(make([]byte, MarkerLen), bytes.Repeat([]byte{0xAB}, 28)...)
	cases := []struct {
		name string
		b    []byte
		want Kind
	}{
		{"nil", nil, KindInvalid},
		{"empty", []byte{}, KindInvalid},
		{"keepalive", Keepalive[:], KindKeepalive},
		{"keepalive literal", []byte{0xFF}, KindKeepalive},
		{"one other byte", []byte{0x00}, KindInvalid},
		{"two bytes ff", []byte{0xFF, 0xFF}, KindInvalid},
		{"zero spi, less than marker", []byte{0, 0, 0}, KindInvalid},
		{"marker only", []byte{0, 0, 0, 0}, KindInvalid},
		{"marker and less than an IKE header", append(make([]byte, MarkerLen), make([]byte, 27)...), KindInvalid},
		{"marker and IKE header", ike, KindIKE},
		{"marker and IKE message", append(bytes.Clone(ike), 1, 2, 3), KindIKE},
		{"short non-zero", []byte{0xc1, 0, 0, 1, 0, 0, 1}, KindInvalid},
		{"ESP header only", []byte{0xc1, 0, 0, 1, 0, 0, 0, 1}, KindESP},
		{"ESP", append([]byte{0, 0, 1, 0, 0, 0, 0, 1}, make([]byte, 40)...), KindESP},
		{"ESP starting with FF", append([]byte{0xFF}, make([]byte, 40)...), KindESP},
		{"SPI 1 is still ESP-shaped", []byte{0, 0, 0, 1, 0, 0, 0, 1}, KindESP},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Classify(c.b), c.name)
	}
	require.Equal(t, uint32(0xc1000001), SPIOf([]byte{0xc1, 0, 0, 1, 9}))
	require.Zero(t, SPIOf([]byte{1, 2, 3}))
	for k, s := range map[Kind]string{KindInvalid: "invalid", KindESP: "esp", KindIKE: "ike", KindKeepalive: "keepalive", 9: "Kind(9)"} {
		require.Equal(t, s, k.String())
	}
}

// TestClassifySealed: whatever Seal produces is ESP with our SPI.
func TestClassifySealed(t *testing.T) {
	for _, s := range testSuites {
		o, _ := pair(t, s, false, true)
		pkt := seal(t, o, ipv4Packet(20))
		require.Equal(t, KindESP, Classify(pkt))
		require.Equal(t, o.SPI(), SPIOf(pkt))
	}
}
