// Command loadgen opens many OpenVPN tunnels (UDP or TCP) and IKEv2 SAs
// against one server, to measure what a server costs per tunnel and per
// handshake and where it breaks. It needs no TUN device: each tunnel's
// packets are read and written by the program itself.
//
// It dials K handshakes at a time, each tunnel with its own client
// certificate (issued in memory from a CA given with -ca-cert/-ca-key) or
// all with one (-cert/-key, or the profile's), the OpenVPN settings taken
// from an .ovpn profile (-config) so that stock openvpn servers and ours
// are driven alike. While it runs it shows progress (one updating line on
// a terminal, periodic lines otherwise); then it reports handshakes per
// second, latency percentiles and failures by cause, holds the tunnels for
// -hold with keepalives and, with -pps, small UDP packets inside each
// tunnel to -target, and reports its own memory. SIGINT stops it cleanly
// (a second one at once).
//
//	loadgen -config client.ovpn -ca-cert ca.crt -ca-key ca.key -n 1000 -k 8 -hold 1m
//	loadgen -ipsec 100 -ipsec-server 10.99.0.1:4500 -ipsec-ca ca.crt -ca-cert ca.crt -ca-key ca.key
//
// It is bounded: more than -max tunnels in all are refused unless -force,
// and it sends only to the one server address given (the profile's first
// remote, or -remote; -ipsec-server), resolved once.
//
// Servers cap the pending handshakes of one source address
// (openvpn.ServerConfig.MaxPendingPerSource, 8 by default), so K above
// that, from one host, measures the cap, not the server.
package main
