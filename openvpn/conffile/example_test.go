package conffile_test

import (
	"fmt"
	"strings"

	"github.com/remotegate/remotegate/openvpn/conffile"
)

// A plant engineer's existing client profile is read as it is.
func Example() {
	profile := `client
dev tun
proto udp
remote vpn.plant.example 1194
remote-cert-tls server
data-ciphers AES-256-GCM
persist-key
`
	f, err := conffile.Parse(strings.NewReader(profile), ".")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Client, f.Remotes[0].Host, f.Remotes[0].Port, f.DataCiphers)
	_, err = conffile.Parse(strings.NewReader("dev tap\n"), ".")
	fmt.Println(err)
	// Output:
	// true vpn.plant.example 1194 [AES-256-GCM]
	// conffile: line 1: dev: not supported: tap (layer 2) devices are not implemented; use dev tun
}
