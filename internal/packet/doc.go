// Package packet holds small helpers for IP packets that several transports
// share: the Internet checksum (RFC 1071) and the TCP/UDP pseudo-header sum.
package packet
