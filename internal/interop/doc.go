// Package interop holds helpers that drive stock openvpn 2.6 from tests:
// key generation with `openvpn --genkey`, the reference server and client
// configs of the protocol notes (section 7.1), and starting a stock peer in
// a network namespace made with internal/netns.
//
// The package's own test is the harness self-test: a stock server and a
// stock client in two namespaces, joined by a veth pair, must pass pings and
// iperf3 traffic through the tunnel. The project's server and client are
// tested against stock peers with the same helpers elsewhere.
package interop
