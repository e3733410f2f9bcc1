package pki

import "math/big"

// SerialString is the one text form of a certificate serial number across
// remotegate: lower-case hexadecimal without a prefix or leading zeros,
// e.g. "5f3a9c0e12". The management API names certificates by it
// (/api/v1/certificates/{serial}), the store keys them by it, and events,
// logs and error messages print it, so that a serial read in one place
// can be searched for in any other. It is also how openssl prints a
// serial (`openssl x509 -serial`, there in upper case). A nil serial is "".
func SerialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.Text(16)
}
