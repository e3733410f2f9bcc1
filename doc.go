// Package remotegate is a Go SDK for industrial remote-access brokering.
//
// A central broker terminates VPN tunnels from plant gateways ("devices", each
// with machine LANs behind it) and from service engineers ("users"), and
// connects them only as the access rules say. The SDK is a set of packages that
// can be used on their own or composed:
//
//   - tunnel: the packet-I/O vocabulary shared by all transports (Device,
//     Session, Handler) and a Linux TUN device.
//   - openvpn: an OpenVPN 2.6 wire-compatible server and client.
//
// This root package holds no code; it documents the module.
package remotegate
