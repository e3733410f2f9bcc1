// Package keymethod encodes and decodes what OpenVPN peers say to each other
// inside the TLS session: the key-method-2 message (randoms, options string,
// username/password, peer info), the peer-info variables, cipher
// negotiation, PUSH_REPLY options and the NUL-terminated control commands.
package keymethod
