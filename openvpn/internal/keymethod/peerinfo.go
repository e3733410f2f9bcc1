package keymethod

import (
	"errors"
	"sort"
	"strconv"
	"strings"
)

// IV_PROTO bits.
const (
	ProtoDataV2        = 1 << 1
	ProtoRequestPush   = 1 << 2
	ProtoTLSKeyExport  = 1 << 3
	ProtoAuthPendingKW = 1 << 4
	ProtoNCPP2P        = 1 << 5
	ProtoDNSOption     = 1 << 6
	ProtoCCExitNotify  = 1 << 7
	ProtoAuthFailTemp  = 1 << 8
	ProtoDynTLSCrypt   = 1 << 9
)

// PeerInfo is the client's peer-info block.
type PeerInfo struct {
	Version  string
	Platform string
	Proto    uint32
	Ciphers  []string
	NCP      int
	MTU      int
	TCPNL    bool
	// Raw holds every KEY=VALUE line seen.
	Raw map[string]string
}

// ParsePeerInfo reads "\n"-separated KEY=VALUE lines; malformed lines are
// skipped.
func ParsePeerInfo(s string) PeerInfo {
	p := PeerInfo{Raw: map[string]string{}}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimRight(line, "\r\x00")
		k, v, ok := strings.Cut(line, "=")
		// Lines with control characters are garbage, not values to keep.
		if !ok || k == "" || !printable(line) {
			continue
		}
		p.Raw[k] = v
		switch k {
		case "IV_VER":
			p.Version = v
		case "IV_PLAT":
			p.Platform = v
		case "IV_PROTO":
			if n, err := strconv.ParseUint(v, 10, 32); err == nil {
				p.Proto = uint32(n)
			}
		case "IV_CIPHERS":
			for _, c := range strings.Split(v, ":") {
				if c != "" {
					p.Ciphers = append(p.Ciphers, c)
				}
			}
		case "IV_NCP":
			p.NCP, _ = strconv.Atoi(v)
		case "IV_MTU":
			p.MTU, _ = strconv.Atoi(v)
		case "IV_TCPNL":
			p.TCPNL = v == "1"
		}
	}
	return p
}

// Marshal encodes the well-known fields, then any other Raw entries in
// sorted order.
func (p PeerInfo) Marshal() string {
	var b strings.Builder
	add := func(k, v string) {
		if v != "" {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	add("IV_VER", p.Version)
	add("IV_PLAT", p.Platform)
	if p.TCPNL {
		add("IV_TCPNL", "1")
	}
	if p.MTU > 0 {
		add("IV_MTU", strconv.Itoa(p.MTU))
	}
	// A peer that lists IV_CIPHERS negotiates; 2.4 servers look only at
	// IV_NCP, so announce 2 unless a different value was given.
	switch {
	case p.NCP > 0:
		add("IV_NCP", strconv.Itoa(p.NCP))
	case len(p.Ciphers) > 0:
		add("IV_NCP", "2")
	}
	add("IV_CIPHERS", strings.Join(p.Ciphers, ":"))
	if p.Proto != 0 {
		add("IV_PROTO", strconv.FormatUint(uint64(p.Proto), 10))
	}
	known := map[string]bool{"IV_VER": true, "IV_PLAT": true, "IV_TCPNL": true, "IV_MTU": true, "IV_NCP": true, "IV_CIPHERS": true, "IV_PROTO": true}
	var keys []string
	for k := range p.Raw {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, p.Raw[k])
	}
	return b.String()
}

// ErrNoSharedCipher means the peers have no data cipher in common.
var ErrNoSharedCipher = errors.New("keymethod: no shared data cipher")

// NegotiateCipher returns the first of serverCiphers that the client offers:
// in IV_CIPHERS; or, without it and with IV_NCP >= 2, AES-256-GCM or
// AES-128-GCM; or the "cipher" item of a pre-2.4 client's options string.
// The comparison ignores case; the server's spelling is returned.
func NegotiateCipher(serverCiphers []string, pi PeerInfo, clientOptions string) (string, error) {
	offered := pi.Ciphers
	if len(offered) == 0 && pi.NCP >= 2 {
		offered = []string{"AES-256-GCM", "AES-128-GCM"}
	}
	if len(offered) == 0 {
		for _, item := range strings.Split(clientOptions, ",") {
			if c, ok := strings.CutPrefix(item, "cipher "); ok {
				offered = []string{c}
			}
		}
	}
	for _, s := range serverCiphers {
		for _, c := range offered {
			if strings.EqualFold(s, c) {
				return s, nil
			}
		}
	}
	return "", ErrNoSharedCipher
}
