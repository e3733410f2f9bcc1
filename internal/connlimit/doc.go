// Package connlimit bounds what connections that have proven nothing yet
// may hold: TCP connections accepted but not authenticated, sessions still
// in their handshake, HTTP connections idle between requests.
//
// A Set counts such entries in total and per source (an IPv4 address, or
// an IPv6 /64, which one host usually controls whole). When a new entry
// would exceed a cap, the oldest evictable entry (of that source for the
// per-source cap, of all sources for the total cap) is closed to make room:
// a flood of idle connections costs its sender its own oldest connections
// and cannot keep a newcomer out, while the process never holds more than
// the caps' worth of descriptors and memory for it. Entries that must not
// be closed (an HTTP request in progress) are held; they count but are
// never evicted, and when only held entries fill a cap the newcomer is
// refused instead.
//
// Listener applies a Set to a net.Listener, and Backoff is the retry
// schedule of an accept loop that must survive any accept error.
package connlimit
