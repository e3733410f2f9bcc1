package pki

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxCommonName is the longest common name X.509 allows, in characters
// (ub-common-name, RFC 5280).
const MaxCommonName = 64

// CheckCommonName refuses a common name that no certificate of the CA
// should carry: empty, longer than MaxCommonName characters, not valid
// UTF-8, or with a control or format character or a line or paragraph
// separator. Such a name would be echoed by every tool that shows the
// certificate and copied into files and logs that read a line break as
// the start of something new. Spaces are allowed: "remotegate broker CA".
//
// The CA checks no more than this: which names may name a participant is
// the access model's rule (policy.ValidName), and the caller that issues
// a participant's certificate checks it.
func CheckCommonName(cn string) error {
	switch {
	case cn == "":
		return fmt.Errorf("%w: no common name", ErrInvalidRequest)
	case !utf8.ValidString(cn):
		return fmt.Errorf("%w: common name %s is not valid UTF-8", ErrInvalidRequest, quoteCN(cn))
	case utf8.RuneCountInString(cn) > MaxCommonName:
		return fmt.Errorf("%w: common name %s has %d characters; X.509 allows %d", ErrInvalidRequest, quoteCN(cn), utf8.RuneCountInString(cn), MaxCommonName)
	}
	for _, r := range cn {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("%w: common name %s contains %U", ErrInvalidRequest, quoteCN(cn), r)
		}
	}
	return nil
}

// quoteCN quotes a common name for a message, cut short if it is long.
func quoteCN(cn string) string {
	if len(cn) <= 4*MaxCommonName {
		return strconv.Quote(cn)
	}
	return strconv.Quote(cn[:MaxCommonName]) + fmt.Sprintf("... (%d bytes)", len(cn))
}
