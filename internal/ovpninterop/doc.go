// Package ovpninterop holds the tests that prove the SDK against real peers
// (stock openvpn 2.6) in network namespaces the tests create, and the
// helpers they share: building the example programs, generating keys with
// stock openvpn, and writing configs in the format both understand.
package ovpninterop
