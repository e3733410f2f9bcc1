// Package pki is the broker's certificate authority: it creates or imports
// a CA (whose key may stay on a PKCS#11 token), issues certificates for
// servers, devices and users with the key usages OpenVPN and IKEv2 peers
// expect, renews and revokes them, publishes CRLs and answers OCSP, exports
// what a participant needs (PEM, PKCS#12), enrolls devices that keep their
// own keys (one-time tokens and CSRs), and verifies peers for the
// transports.
//
// Keys are crypto.Signers: software keys, key files (PEM, PKCS#8,
// encrypted PKCS#8) and keys on PKCS#11 tokens and smartcards. PKCS#11
// needs cgo; built without cgo or with the nopkcs11 tag, the PKCS#11
// functions return ErrPKCS11Unavailable and everything else works.
//
// Enrollment is served over HTTPS in the manner of EST (RFC 7030) by
// EnrollmentHandler; EnrollmentHandlerWith lets a product check the
// identity before each issue, under its own lock, and hear of each
// certificate issued (docs/ENROLLMENT.md).
//
// Serial numbers are written in one form everywhere, SerialString's
// lower-case hex: in error messages here, and in the broker's API, store,
// events and logs.
package pki
