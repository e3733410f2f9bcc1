package swaninterop

import (
	"strings"
	"testing"
	"time"
)

// TestConnStringInitiator pins the rendering of the notes' initiator
// (§8.3, road-warrior variant) so that changes to the builder are visible.
func TestConnStringInitiator(t *testing.T) {
	l := &Lab{LabOptions: LabOptions{Mode: RoadWarrior}}
	got := l.InitiatorConn().String()
	want := `connections {
  lab {
    version = 2
    local_addrs = 10.231.0.1
    remote_addrs = 10.231.0.2
    encap = yes
    proposals = aes256gcm16-prfsha256-ecp256-curve25519-modp2048, aes256-sha256-ecp256-modp2048
    vips = 0.0.0.0
    dpd_delay = 30s
    local {
      auth = pubkey
      certs = ini.pem
      id = ini.test
    }
    remote {
      auth = pubkey
      id = resp.test
    }
    children {
      net {
        local_ts = dynamic
        remote_ts = 10.232.0.0/24
        esp_proposals = aes256gcm16-ecp256, aes256gcm16
        start_action = none
        dpd_action = restart
      }
    }
  }
}
`
	if got != want {
		t.Errorf("rendering differs\n--- got:\n%s\n--- want:\n%s", got, want)
	}
}

// TestConnStringAll renders every field once: responder with pool, PSK
// secret, ports, rekey times, quoting.
func TestConnStringAll(t *testing.T) {
	c := Conn{
		Name:           "gw",
		Child:          "lan",
		LocalAddr:      "10.231.0.2",
		LocalPort:      4500,
		RemotePort:     4500,
		Proposals:      []string{"default"},
		ESPProposals:   []string{"aes128gcm16"},
		LocalID:        "resp.test",
		RemoteID:       "C=CH, O=remotegate, CN=dev 1",
		Auth:           "psk",
		PSK:            `s3cr"et`,
		CertFile:       "ignored-for-psk.pem",
		SendCert:       "always",
		Pools:          []Pool{{Name: "rw", Addrs: "10.233.0.0/24", DNS: []string{"10.232.0.53"}}},
		LocalTS:        "10.232.0.0/24, 10.232.1.0/24",
		RemoteTS:       "dynamic",
		RekeyTime:      90 * time.Second,
		ChildRekeyTime: -1,
		DPDDelay:       1500 * time.Millisecond,
		DPDAction:      "clear",
		Extra:          []string{"mobike = no"},
		ChildExtra:     []string{"mode = tunnel"},
	}
	want := `connections {
  gw {
    version = 2
    local_addrs = 10.231.0.2
    local_port = 4500
    remote_port = 4500
    proposals = default
    pools = rw
    rekey_time = 90s
    dpd_delay = 2s
    send_cert = always
    mobike = no
    local {
      auth = psk
      id = resp.test
    }
    remote {
      auth = psk
      id = "C=CH, O=remotegate, CN=dev 1"
    }
    children {
      lan {
        local_ts = 10.232.0.0/24, 10.232.1.0/24
        remote_ts = dynamic
        esp_proposals = aes128gcm16
        rekey_time = 0
        dpd_action = clear
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-gw {
    id-1 = resp.test
    id-2 = "C=CH, O=remotegate, CN=dev 1"
    secret = 0x73336372226574
  }
}
pools {
  rw {
    addrs = 10.233.0.0/24
    dns = 10.232.0.53
  }
}
`
	if got := c.String(); got != want {
		t.Errorf("rendering differs\n--- got:\n%s\n--- want:\n%s", got, want)
	}
}

func TestRenderSeveral(t *testing.T) {
	a := Conn{Name: "a", Auth: "psk", PSK: "one", LocalID: "x"}
	b := Conn{Name: "b", Pools: []Pool{{Name: "p", Addrs: "10.9.0.0/24"}}}
	got := Render(a, b)
	for _, want := range []string{"  a {\n", "  b {\n", "  ike-a {\n", `secret = "one"`, "  p {\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("Render lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "connections {") != 1 || strings.Count(got, "secrets {") != 1 || strings.Count(got, "pools {") != 1 {
		t.Errorf("Render must produce one section of each kind:\n%s", got)
	}
}

func TestStrongswanConf(t *testing.T) {
	c := &Charon{dir: "/tmp/sw1", uri: "unix:///tmp/sw1/charon.vici"}
	got := c.strongswanConf(Options{Plugins: []string{"eap-tls"}, LogLevels: map[string]int{"enc": 3, "net": 2}, Settings: "keep_alive = 5s\nretransmit_timeout = 1.0"})
	for _, want := range []string{
		"  load_modular = no\n",
		" kernel-libipsec kernel-netlink ",
		" attr eap-tls\n",
		"  install_routes = yes\n",
		"      socket = unix:///tmp/sw1/charon.vici\n",
		"      path = /tmp/sw1/charon.log\n",
		"      enc = 3\n", "      ike = 2\n", "      net = 2\n", "      default = 1\n",
		"  keep_alive = 5s\n  retransmit_timeout = 1.0\n}\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("strongswan.conf lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "resolve") {
		t.Errorf("strongswan.conf mentions resolve:\n%s", got)
	}
}

func TestParseCounters(t *testing.T) {
	out := `lab: #1, ESTABLISHED, IKEv2, 19900972db2e25b0_i* aa15638b736ffba1_r
  local  'ini.test' @ 10.231.0.1[4500] [10.233.0.1]
  remote 'resp.test' @ 10.231.0.2[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256
  established 0s ago, rekeying in 13417s
  other: #2, reqid 2, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 0s ago, rekeying in 3262s, expires in 3960s
    in  11111111,      7 bytes,     1 packets,     0s ago
    out 22222222,      7 bytes,     1 packets,     0s ago
    local  10.233.0.1/32
    remote 10.9.0.0/24
  net: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 0s ago, rekeying in 3262s, expires in 3960s
    in  0f1165a4 (-|0x00000001),    252 bytes,     3 packets,     0s ago
    out 9cd87a7b,  1234567 bytes,  4321 packets
    local  10.233.0.1/32
    remote 10.232.0.0/24
`
	got, err := ParseCounters(out, "net")
	if err != nil {
		t.Fatal(err)
	}
	want := Counters{Mode: "TUNNEL-in-UDP", SPIIn: "0f1165a4", SPIOut: "9cd87a7b", BytesIn: 252, PacketsIn: 3, BytesOut: 1234567, PacketsOut: 4321, LocalTS: "10.233.0.1/32", RemoteTS: "10.232.0.0/24"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := ParseCounters(out, "missing"); err == nil {
		t.Error("a missing child parsed without error")
	}
}

func TestSelfCPU(t *testing.T) {
	before, err := SelfCPU.CPUTime()
	if err != nil {
		t.Fatal(err)
	}
	for x, end := 0, time.Now().Add(30*time.Millisecond); time.Now().Before(end); x++ {
		_ = x * x
	}
	after, err := SelfCPU.CPUTime()
	if err != nil || after <= before {
		t.Errorf("SelfCPU did not advance: %v -> %v (%v)", before, after, err)
	}
}
