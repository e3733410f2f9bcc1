// Package tlsaead names the TLS 1.2 cipher suites that the module's
// servers accept: ECDHE key exchange with an AEAD cipher (AES-GCM,
// ChaCha20-Poly1305). crypto/tls's default list also offers the CBC-SHA
// suites (MAC-then-encrypt, the family of Lucky13 and POODLE-style padding
// oracles), and a GODEBUG setting can bring back RSA key exchange without
// forward secrecy; an explicit list is neither. TLS 1.3 suites are all AEAD
// and not configurable, so this list only matters for TLS 1.2.
package tlsaead

import "crypto/tls"

// CipherSuites returns the list for tls.Config.CipherSuites, a new slice
// each time so that no caller can change another's.
func CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}
