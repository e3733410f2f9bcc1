// Package ipsecinterop holds the interop tests of package ipsec against
// strongSwan (charon with kernel-libipsec) in network namespaces: the
// project's responder runs inside the test process, its sockets and TUN
// device created in the responder's namespace (netns.NS.Do).
package ipsecinterop
