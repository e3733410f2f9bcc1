// Command ovpn-client is a pure-Go OpenVPN client: it reads a client profile
// (client.ovpn, with inline or file ca/cert/key and tls-auth, tls-crypt or
// tls-crypt-v2), connects, opens a TUN device with the pushed address and
// routes, and reconnects when the server goes away.
//
//	ovpn-client -config client.ovpn
package main
