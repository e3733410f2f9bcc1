// Package profile renders what a participant needs to connect to the
// broker, in the formats the broker hands out: an OpenVPN profile
// (.ovpn, everything inline), a strongSwan profile (a tar archive for
// /etc/swanctl), a PKCS#12 file (key, certificate and CA for systems
// that import identities that way), and for users of the IKEv2 clients
// built into operating systems an Apple configuration profile
// (.mobileconfig, macOS and iOS), a PowerShell script for Windows 10 and
// 11 and a profile of the strongSwan app for Android (.sswan). Which
// proposals those clients send, and which of them the broker accepts, is
// said with AppleIKEProposal and WindowsIKEProposal. The broker, the demo of ovpn-server
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
