// Package netns runs test programs in throw-away Linux network namespaces.
//
// Interoperability tests start stock peers (openvpn, iperf3, ping) in
// namespaces the test creates itself, joined by veth pairs, so that they
// never touch the host's network and can run side by side with other tests.
// Everything is done with the iproute2 `ip` command (no cgo), and every
// namespace, link and process is removed in t.Cleanup, also when the test
// fails.
//
// Tests need root. Require skips a test that cannot run, saying why; when the
// CI environment variable is set it fails the test instead, so that a
// misconfigured CI runner cannot pass by skipping everything.
package netns
