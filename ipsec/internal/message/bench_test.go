package message

import "testing"

// BenchmarkParse parses an IKE_AUTH-sized message (the 893-byte payload
// chain of strongSwan's IKE_AUTH request, notes section 5.1, in the clear
// behind a header).
func BenchmarkParse(b *testing.B) {
	msg := goldenAuthMessage(b)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	msg := goldenAuthMessage(b)
	h, ps, err := Parse(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(h, ps); err != nil {
			b.Fatal(err)
		}
	}
}
