// Package testpki makes throw-away certificate authorities and leaf
// certificates for tests. Nothing is written to disk unless WriteFiles is
// called.
//
// Certificates satisfy stock openvpn 2.6 with `remote-cert-tls server|client`,
// which checks both extended key usage and the presence of a keyUsage
// extension: server certificates carry serverAuth with
// digitalSignature|keyAgreement, client certificates clientAuth with
// digitalSignature. Keys are ECDSA P-256 and certificates are valid from an
// hour ago (tolerating clock skew between namespaces and peers) for a day.
package testpki
