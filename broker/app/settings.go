package app

import (
	"net/netip"

	"github.com/remotegate/remotegate/broker/store"
)

// The defaults of the stored settings (store.Settings), which are also the
// defaults of broker.yaml.
const (
	// DefaultPort is OpenVPN's port, UDP and TCP.
	DefaultPort = 1194
	// DefaultPublicAddress is what profiles connect to: this host, which
	// suits a demo only.
	DefaultPublicAddress = "127.0.0.1"
	// DefaultIPsecPort is the port of IKE with NAT traversal and of ESP
	// in UDP; profiles use it.
	DefaultIPsecPort = 4500
	// DefaultIKEPort is plain IKE's port, where initiators start by
	// default; it needs privileges.
	DefaultIKEPort = 500
)

// DefaultPool is the tunnel network; its first address is the broker's.
var DefaultPool = netip.MustParsePrefix("10.8.0.0/24")

// withDefaults fills the unset fields of stored settings: a data directory
// of an older version, or a store edited elsewhere, may lack some.
func withDefaults(s store.Settings) store.Settings {
	if s.Port == 0 {
		s.Port = DefaultPort
	}
	if s.PublicAddress == "" {
		s.PublicAddress = DefaultPublicAddress
	}
	if !s.Pool.IsValid() {
		s.Pool = DefaultPool
	}
	if s.IPsecPort == 0 {
		s.IPsecPort = DefaultIPsecPort
	}
	if s.IKEPort == 0 {
		s.IKEPort = DefaultIKEPort
	}
	return s
}
