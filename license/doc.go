// Package license implements signed license files that set how many
// participants (users plus devices) a remote-access server may hold, and
// the capacity, activation and release of those licenses on one
// installation. Everything works offline, for air-gapped plants: license
// files in, release statements out.
//
// # License files
//
// A license file is UTF-8 text with LF line ends. The license is an armored
// block of "name: value" lines; text before the BEGIN line and after the
// END line (comments, a note to the customer) is ignored:
//
//	Licensed to ACME Plant 4. Import this file on the remotegate server.
//	-----BEGIN REMOTEGATE LICENSE-----
//	number: RG-2026-000123
//	product: remotegate
//	edition: standard
//	participants: 64
//	issued: 2026-11-23
//	expires: 2027-11-23
//	installation: 3f1c9a0e5b7d42c68e1f0a2b4c6d8e90
//	key: fe812c12
//	signature: gj/dLIFNDXHNPmUSPV6I3w5Law2BIltN/f6d3OVdJw2r26mhsc6Tg/SfKe19ziFkbhvS/wicpuwIH/T3JpyMBg==
//	-----END REMOTEGATE LICENSE-----
//
// The fields, in exactly this order:
//
//   - number: the license number, 1 to 64 characters A-Z, 0-9 or -.
//   - product, edition: 1 to 32 characters a-z, 0-9 or -.
//   - participants: the participants the license adds, a decimal number
//     from 1 to 1000000 without leading zeros.
//   - issued: the issue date, YYYY-MM-DD (UTC).
//   - expires: optional; the expiry date, YYYY-MM-DD, after issued. The
//     license counts until 00:00 UTC of that day, then for the grace
//     period the embedding product chooses. Omitted: it never expires.
//   - installation: optional; the installation ID the license is bound to,
//     1 to 128 characters A-Z, a-z, 0-9 or -. Omitted: any installation.
//   - key: the key ID of the vendor key that signed the license, the first
//     4 bytes of the SHA-256 hash of the public key in lowercase hex (see
//     KeyID). It selects the key among those a Verifier trusts.
//   - signature: the Ed25519 signature, standard base64 with padding.
//
// The signature covers LicenseSigningPrefix ("remotegate-license-v1\n")
// followed by the field lines from "number:" through "key:", each ending in
// LF, exactly as they appear in the file. Parsing is strict: the armor lines
// must match exactly, no field may be unknown, repeated, out of order or
// have trailing whitespace, and every value is checked. Errors name the
// line and the field:
//
//	license: line 6: participants "0x40": must be a decimal number from 1 to 1000000 without leading zeros
//
// The vendor signs licenses with Issue (or a Vendor); the tool
// examples/licensetool creates vendor keys and issues and inspects
// licenses. The embedding product verifies them with a Verifier holding the
// vendor public keys it ships; this package contains no key. To rotate
// keys, the product trusts the old and the new key until no license signed
// by the old key is in use.
//
// # Capacity
//
// Every installation has the base license of BaseParticipants (4)
// participants. Activated licenses add their participants: packs of +64,
// +256 and +1024 give 4+64+256+1024 = 1348. A license counts while it is
// activated and not expired, released or revoked; an expired license keeps
// counting during the grace period, and Capacity lists it as in grace.
// Capacity.String gives the text the broker puts in its refusal message.
// EventsBetween reports activations, releases, revocations, and expiry
// transitions as they fall due.
//
// # Activation and release
//
// Each installation has a stable installation ID that the embedding product
// creates once (NewInstallationID) and stores; this package never reads
// hardware. State.Activate refuses a license bound to another installation.
// State.Release releases a license: it stops counting at once, cannot be
// activated again on this installation, and the installation gets a
// release statement signed with its own Ed25519 key:
//
//	-----BEGIN REMOTEGATE LICENSE RELEASE-----
//	number: RG-2026-000123
//	installation: 3f1c9a0e5b7d42c68e1f0a2b4c6d8e90
//	released: 2027-03-01T09:30:00Z
//	installation-key: <standard base64 of the 32-byte Ed25519 public key>
//	signature: <standard base64 of the Ed25519 signature>
//	-----END REMOTEGATE LICENSE RELEASE-----
//
// The signature covers ReleaseSigningPrefix followed by the lines from
// "number:" through "installation-key:". The vendor portal checks it with
// VerifyRelease, matches the key and installation against its activation
// records, and re-issues the license for the new installation, e.g. after a
// server replacement.
//
// State keeps its entries in memory; the embedding product stores Entries
// and restores them with Restore, which verifies every file again.
package license
