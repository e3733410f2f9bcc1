// Package swaninterop runs strongSwan 5.9 (`charon` driven through
// `swanctl`) in throw-away network namespaces, as the reference peer that
// the SDK's userspace IKEv2/ESP implementation (package ipsec) is proven
// against, and as the performance baseline it is compared with.
//
// # What it runs
//
// Start launches /usr/lib/ipsec/charon (the foreground daemon, not
// charon-systemd) inside a namespace made with internal/netns, with its own
// strongswan.conf (selected through STRONGSWAN_CONF), its own VICI socket and
// charon.log in a short directory under /tmp (unix socket paths are limited to
// 108 bytes, t.TempDir paths can be longer), and a swanctl directory tree
// that Load fills (swanctl --load-all --file <dir>/swanctl/swanctl.conf takes
// certificates and keys from x509/, x509ca/ and private/ next to that file).
// Conn renders swanctl.conf text; CA and Leaf make certificates strongSwan
// accepts (CA:TRUE and keyCertSign on the CA, SAN = IKE identity and
// digitalSignature on end entities, PKCS#8 keys), ECDSA P-256 or RSA 2048.
//
// Lab is the topology of notes/ikev2.md §8.4: namespace I (initiator,
// 10.231.0.1) and namespace R (responder, 10.231.0.2, protected subnet
// 10.232.0.0/24, virtual-IP pool 10.233.0.0/24) joined by a veth pair. Either
// side can be strongSwan (StartInitiator, StartResponder) or the project's own
// implementation using the lab's addresses, identities and certificates;
// StrongSwanPair puts strongSwan on both sides and Throughput measures iperf3
// goodput and the processor time of each side.
//
// # Why kernel-libipsec
//
// The kernels of the machines these tests run on have no XFRM ciphers: with
// the usual kernel-netlink plugin charon negotiates the CHILD_SA and then
// fails to install it ("unable to add SAD entry"). The kernel-libipsec plugin,
// loaded before kernel-netlink, does ESP in userspace behind a TUN device
// ipsec0 and forces UDP encapsulation (RFC 3948, port 4500), which is exactly
// the wire format the SDK speaks. `install_routes = yes` is required: the
// routes charon puts into table 220 (`dev ipsec0 src <inner address>`) are
// what steers cleartext into the TUN. The plugin list is explicit
// (load_modular = no) and never contains resolve, which would rewrite the
// host's /etc/resolv.conf (namespaces share the file system) when a DNS
// attribute arrives.
//
// # Why a private /run
//
// charon writes /var/run/charon.pid (/var/run is /run on Debian) and a
// second instance that finds it refuses to start (notes pitfall 9.21), so
// instances in other namespaces or other tests would collide. Each instance therefore runs
// as `unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /run &&
// exec charon'` inside `ip netns exec`: its /run is an empty tmpfs that
// nothing else sees and that disappears with it. The VICI socket lives in the
// instance's directory, so swanctl (run in the namespace with --uri) does not
// need that /run.
//
// Processes and namespaces are removed in t.Cleanup: charon gets SIGTERM, on
// which it sends DELETE for its IKE_SAs, and SIGKILL after 3 s. charon.log is
// printed when the test failed. Require skips tests that cannot run (no root,
// no /dev/net/tun, strongSwan not installed), or fails them when CI is set.
//
// See notes/ikev2.md §8 for the verified configuration this package encodes
// and §8.5 for log lines worth asserting on.
package swaninterop
