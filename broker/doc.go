// Package broker composes the transports (openvpn, later ipsec), the access
// model (policy), 1:1 NAT (nat) and the PKI (pki) into a remote-access
// broker: service engineers reach the machines behind plant gateways, and
// nothing else.
//
// The Switch is the per-packet path: every packet a transport session
// delivers is checked against its sender's addresses (anti-spoofing),
// routed (longest prefix over tunnel addresses and device networks or
// their aliases), translated (nat), checked against the policy snapshot
// and its flow table, and sent to the target session in a batch. Its
// tables are immutable snapshots swapped atomically by Update; the packet
// path takes no lock and does not allocate.
package broker
