// Command ovpn-server is a pure-Go stand-in for `openvpn --server`: it reads
// an OpenVPN server config file (the directives listed in package
// openvpn/conffile), opens the TUN device with the server address, and serves
// stock OpenVPN clients over UDP or TCP. With client-to-client it relays
// between clients in userspace.
//
//	ovpn-server -config server.conf
//	ovpn-server -demo DIR     # write a throw-away CA, server.conf and client.ovpn to DIR, then serve
package main
