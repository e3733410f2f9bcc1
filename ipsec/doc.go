// Package ipsec is IKEv2 (RFC 7296) with ESP in userspace over UDP
// (RFC 4303, RFC 3948): no kernel XFRM, and no privileges beyond binding
// its ports. Server is the responder; its sessions are tunnel.Sessions, so
// IPsec peers join the broker's switch exactly like OpenVPN clients. Dial
// is the initiator, for device-side gateways: its Client is a
// tunnel.Device that a TUN can be bridged to (see examples/ipsec-gateway).
//
// A Server authenticates initiators by certificate (RSA, ECDSA and the
// RFC 7427 signature method; the check itself is a callback, so that the
// broker plugs in its PKI) or by pre-shared key, asks the Handler to admit
// them, hands out a virtual address in the configuration payload, narrows
// the traffic selectors to what the Handler assigned, and answers
// CREATE_CHILD_SA (rekeys of child and IKE SAs) and INFORMATIONAL (dead
// peer detection, deletes). Since its only ESP is ESP-in-UDP, it makes
// every initiator believe that it is behind a NAT, which makes them
// encapsulate.
//
// After IKE_SA_INIT and IKE_AUTH, which differ by role, the Server and
// the Client run one implementation of the established IKE SA:
// CREATE_CHILD_SA, INFORMATIONAL (deletes, dead peer detection) and the
// retransmission of our own requests, Delete included, which is sent again
// until it is answered or RetransmitTries is reached. Our requests go out
// one at a time (a message-ID window of 1): strongSwan and the IKEv2
// clients built into Windows, macOS, iOS and Android ask for no larger
// one.
//
// IPv6 works in both roles, inside the tunnel and outside. A child SA's
// traffic selectors may hold IPv4 and IPv6 ranges together
// (TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE), narrowed alike. An initiator
// asks for an IPv6 virtual address with DialConfig.RequestAddress6
// (INTERNAL_IP6_ADDRESS and INTERNAL_IP6_DNS, strongSwan's vips = ::);
// the Server answers from the first IPv6 address of the Handler's
// Assignment, as a /128 that the peer's selectors are narrowed to, and
// from Config.DNS. A peer that asks for both families and was assigned
// one gets that one (RFC 7296 §3.15.4). Outer addresses may be IPv6: Dial
// to an IPv6 responder, and Serve on IPv6 sockets.
//
// Serve may be given sockets bound to a wildcard address (0.0.0.0, or ::
// for both families): a host with several addresses then needs no socket
// per address. Each peer is answered from the address it sent to, IKE and
// ESP alike (IP_PKTINFO, IPV6_PKTINFO): peers match answers by address and
// would drop those the kernel sends from its preferred one.
//
// An IKE SA may carry several child SAs, each with its own traffic
// selectors: a gateway with two LANs as two children, as strongSwan does
// with one children entry per LAN. Dial negotiates
// DialConfig.AdditionalChildren after IKE_AUTH; a Server accepts the
// peer's additional children within what the Handler assigned (narrowed,
// TS_UNACCEPTABLE outside it). Outbound packets leave on the child whose
// selectors cover their source and destination, without a lock on the
// data path; a packet that no child covers is dropped and counted
// (Stats.Unroutable, Client.Unroutable), not sent on a child the peer
// would refuse it on. Rekeying or deleting one child leaves the others
// alone; a Server's session without children stays up (the peer may add
// one), a Client without children ends.
//
// Lifetimes and rekeys: both roles answer the peer's rekeys of child
// SAs and of the IKE SA, and start their own, as strongSwan does, by
// Config.IKELifetime and ChildLifetime (DialConfig likewise): a child SA
// is rekeyed after an hour, an IKE SA after four, each up to 10 % earlier
// at random so that rekeys spread, and deleted 10 % after its rekey time
// if no rekey succeeded by then (an IKE SA then ends the tunnel with
// ErrExpired). A child SA is also rekeyed when the packets sent on it
// near 2^32 (Lifetime.RekeyPackets), before the 32-bit ESP sequence
// number runs out. A child SA rekey of ours carries a key exchange (PFS)
// when our ESP proposals name a DH group; an IKE SA rekey always does,
// and the new IKE SA takes the child SAs over. Our traffic moves to a
// new child SA of ours as soon as the peer answers and the old one is
// deleted then; for a rekey the peer started, it moves when the peer
// sends on the new one or deletes the old one, so that the switch-over
// loses no packets. Simultaneous rekeys of one SA by both sides are
// resolved as RFC 7296 §2.8.1 says (the new SA of the exchange with the
// lowest nonce is deleted by its initiator), and a rekey of the peer that
// crosses one of ours of another kind (child SA against IKE SA) is
// refused with TEMPORARY_FAILURE and made again a little later by
// whichever side started it. A negative Lifetime.RekeyTime leaves the
// rekeys by time to the peer.
//
// Both roles support IKE fragmentation (RFC 7383) unless
// Config.Fragmentation or DialConfig.Fragmentation disables it: IKE_AUTH
// with certificate chains then travels in fragments of at most
// FragmentSize bytes instead of IP fragments, which NATs and firewalls
// often drop.
//
// Algorithms: AES-GCM (128, 192, 256 bits with 16-byte ICV) and
// ChaCha20-Poly1305, or AES-CBC with HMAC-SHA2-256, -384 or -512; PRFs
// HMAC-SHA2; key exchange with Curve25519, ECP-256, -384, -521, MODP-3072
// and MODP-2048, also as PFS groups of child rekeys. DefaultIKEProposals
// and DefaultESPProposals are all of them, which covers strongSwan 5.9's
// default proposals minus the deprecated algorithms, so a peer configured
// with any one proposal out of its default connects to our defaults in
// either role. ParseIKEProposals and ParseESPProposals read configured
// proposals in strongSwan's syntax ("aes256gcm16-prfsha384-ecp384").
//
// The wire codec, the IKE cryptography and the ESP data path are in
// internal packages (message, ikecrypto, esp).
package ipsec
