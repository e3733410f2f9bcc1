// Command ipsec-gateway is a device-side IPsec gateway: it connects to an
// IKEv2 responder (strongSwan, or the SDK's ipsec.Server) with package
// ipsec's initiator, opens a TUN device, routes the networks the tunnel
// reaches into it, and carries the packets of the device and of the LAN
// behind it. It reconnects with a growing backoff when the tunnel ends
// (dead peer, delete, network failure), and on SIGTERM or SIGINT deletes
// the IKE SA (so that the responder frees it at once) and exits with
// status 0.
//
// Site to site, a LAN behind the gateway reaching the networks behind the
// responder, with certificates:
//
//	ipsec-gateway -server vpn.example.com -remote-id vpn.example.com \
//	    -cert gw.pem -key gw.key -ca ca.pem \
//	    -lan 192.168.10.0/24 -remote-ts 10.0.0.0/8
//
// Several -lan prefixes share one child SA; with -child-per-lan each gets
// its own (the first in IKE_AUTH, the others by CREATE_CHILD_SA), as a
// responder with one child configuration per LAN (strongSwan's children
// section with one entry per LAN) requires:
//
//	ipsec-gateway ... -lan 192.168.10.0/24,192.168.20.0/24 -child-per-lan
//
// As a road warrior, with a virtual address from the responder's pool and
// a pre-shared key:
//
//	ipsec-gateway -server 203.0.113.7 -id gw1.example.com -psk-file psk.txt
//
// Identities are written as in strongSwan's swanctl.conf: a host name
// (FQDN), an IP address, an e-mail address, or a distinguished name such
// as "C=CH, O=Example, CN=gw1". Without -id the certificate's first DNS
// name (else its subject) is used. Keys are PEM: PKCS#8, or the PKCS#1
// and SEC 1 forms. The -ca file may hold several certificates.
//
// The algorithms are offered as -ike and -esp say, in strongSwan's
// proposal syntax (swanctl.conf's proposals and esp_proposals), several
// proposals separated by commas:
//
//	ipsec-gateway ... -ike aes256gcm16-prfsha384-ecp384 -esp aes256gcm16
//
// Without them the gateway offers package ipsec's defaults, which cover
// strongSwan 5.9's default proposals minus the deprecated algorithms. A
// keyword the package does not implement (modp1024, sha1, modp4096, ...)
// is refused at start with a message naming it.
//
// The TUN gets the virtual address (road warrior); the routes to the
// responder's networks (the traffic selectors it agreed to, narrowed from
// -remote-ts) use that address, or the gateway's own address in -lan, as
// source. IPv6 works the same way: -server may be an IPv6 address
// ("[2001:db8::7]" or "[2001:db8::7]:4500"), and when -remote-ts has an
// IPv6 prefix a road warrior asks for an IPv6 virtual address too (-vip6
// asks for it in any case); each route gets the source address of its own
// family. Hosts on the LAN need the gateway as their route to those
// networks, and the gateway needs IP forwarding
// (sysctl net.ipv4.ip_forward=1), which it does not switch on by itself.
// ESP runs in UDP (port 4500 on the responder) from -listen, an ephemeral
// port by default. The process needs CAP_NET_ADMIN for the TUN and routes.
package main
