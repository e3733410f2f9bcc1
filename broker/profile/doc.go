// Package profile renders what a participant needs to connect to the
// broker, in the three formats the broker hands out: an OpenVPN profile
// (.ovpn, everything inline), a strongSwan profile (a tar archive for
// /etc/swanctl) and a PKCS#12 file (key, certificate and CA for systems
// that import identities that way). The broker, the demo of ovpn-server
// and the interop tests all write their profiles through it, so a profile
// a stock client reads in a test is the profile a user downloads.
//
// A profile is a file another program executes as configuration: a value
// that could end a line, a quoted string or an inline block would let
// whoever chose it add directives (an OpenVPN "up" script, a strongSwan
// connection). So every value that comes from a name or an address is
// checked before anything is written, and a value that fails is refused
// with an error wrapping ErrInvalid; nothing is written then. Names follow
// policy.ValidName, addresses ValidHost.
package profile
