package nat_test

import (
	"encoding/binary"
	"fmt"
	"log"
	"net/netip"

	"github.com/remotegate/remotegate/internal/packet"
	"github.com/remotegate/remotegate/nat"
)

// Plant 7's machine LAN is 192.168.0.0/24, like the LAN of many other plants.
// The broker exposes it as 10.200.7.0/24, so engineers reach plant 7's PLC at
// 192.168.0.10 as 10.200.7.10.
func Example() {
	plant7, err := nat.NewTable(nat.Mapping{
		Real:  netip.MustParsePrefix("192.168.0.0/24"),
		Alias: netip.MustParsePrefix("10.200.7.0/24"),
	})
	if err != nil {
		log.Fatal(err)
	}
	plc := netip.MustParseAddr("192.168.0.10")
	alias, _ := plant7.AliasOf(plc)
	fmt.Println("plant 7's PLC", plc, "is reachable as", alias)

	// An engineer at 172.16.5.2 opens a Modbus/TCP connection to the alias.
	syn := tcpPacket("172.16.5.2", "10.200.7.10", 49152, 502)
	if _, err := plant7.Rewrite(syn, nat.ToDevice); err != nil {
		log.Fatal(err)
	}
	fmt.Println("to plant 7:  ", addresses(syn), "checksums ok:", checksumsOK(syn))

	// The PLC answers from its real address; the engineer sees the alias.
	synAck := tcpPacket("192.168.0.10", "172.16.5.2", 502, 49152)
	if _, err := plant7.Rewrite(synAck, nat.FromDevice); err != nil {
		log.Fatal(err)
	}
	fmt.Println("from plant 7:", addresses(synAck), "checksums ok:", checksumsOK(synAck))
	// Output:
	// plant 7's PLC 192.168.0.10 is reachable as 10.200.7.10
	// to plant 7:   172.16.5.2 -> 192.168.0.10 checksums ok: true
	// from plant 7: 10.200.7.10 -> 172.16.5.2 checksums ok: true
}

// A second plant uses the same LAN, 192.168.0.0/24, and is exposed as
// 10.200.8.0/24. The index tells the broker which plant a packet to
// 10.200.8.10 is for, and that plant's table where it goes there.
func ExampleNewIndex() {
	lan := netip.MustParsePrefix("192.168.0.0/24")
	plant7, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.7.0/24")})
	if err != nil {
		log.Fatal(err)
	}
	plant8, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.8.0/24")})
	if err != nil {
		log.Fatal(err)
	}
	index, err := nat.NewIndex(map[string]*nat.Table{"plant-7": plant7, "plant-8": plant8})
	if err != nil {
		log.Fatal(err)
	}

	for _, dst := range []string{"10.200.8.10", "10.200.7.10", "10.200.9.10"} {
		alias := netip.MustParseAddr(dst)
		device, table, ok := index.LookupTable(alias)
		if !ok {
			fmt.Println(alias, "belongs to no plant")
			continue
		}
		real, _ := table.RealOf(alias)
		fmt.Println(alias, "is", real, "at", device)
	}
	// Output:
	// 10.200.8.10 is 192.168.0.10 at plant-8
	// 10.200.7.10 is 192.168.0.10 at plant-7
	// 10.200.9.10 belongs to no plant
}

// NewTable catches the usual typing mistakes and says what is wrong.
func ExampleNewTable_mistakes() {
	lan := netip.MustParsePrefix("192.168.0.0/24")
	for _, alias := range []string{"10.200.7.1/24", "10.200.0.0/16"} {
		_, err := nat.NewTable(nat.Mapping{Real: lan, Alias: netip.MustParsePrefix(alias)})
		fmt.Println(err)
	}
	_, err := nat.NewTable(
		nat.Mapping{Real: lan, Alias: netip.MustParsePrefix("10.200.7.0/24")},
		nat.Mapping{Real: netip.MustParsePrefix("192.168.1.0/24"), Alias: netip.MustParsePrefix("10.200.7.0/24")},
	)
	fmt.Println(err)
	// Output:
	// nat: prefix has host bits set: alias prefix 10.200.7.1/24, did you mean 10.200.7.0/24? (mapping 0)
	// nat: real and alias prefixes differ in length: 192.168.0.0/24 as 10.200.0.0/16 (mapping 0)
	// nat: overlapping prefixes: alias prefix 10.200.7.0/24 of mapping 0 overlaps 10.200.7.0/24 of mapping 1
}

// An engineer runs traceroute to plant 7's PLC. The plant's router,
// 192.168.0.1, reports "time exceeded" and quotes the probe, which it saw
// addressed to the PLC's real address. On the way out both become aliases,
// so the engineer's traceroute recognizes its probe.
func ExampleTable_Rewrite_icmpError() {
	plant7, err := nat.NewTable(nat.Mapping{
		Real:  netip.MustParsePrefix("192.168.0.0/24"),
		Alias: netip.MustParsePrefix("10.200.7.0/24"),
	})
	if err != nil {
		log.Fatal(err)
	}
	probe := tcpPacket("172.16.5.2", "192.168.0.10", 49152, 80)
	timeExceeded := icmpTimeExceeded("192.168.0.1", "172.16.5.2", probe[:28])
	if _, err := plant7.Rewrite(timeExceeded, nat.FromDevice); err != nil {
		log.Fatal(err)
	}
	fmt.Println("error: ", addresses(timeExceeded), "checksums ok:", checksumsOK(timeExceeded))
	quoted := timeExceeded[28:]
	fmt.Println("quoted:", addresses(quoted), "header checksum ok:", packet.Fold(packet.Sum(quoted[:20], 0)) == 0xffff)
	// Output:
	// error:  10.200.7.1 -> 172.16.5.2 checksums ok: true
	// quoted: 172.16.5.2 -> 10.200.7.10 header checksum ok: true
}

// tcpPacket returns an IPv4 TCP SYN from src to dst with correct checksums.
func tcpPacket(src, dst string, srcPort, dstPort uint16) []byte {
	p := make([]byte, 40)
	ipv4Header(p, 6, src, dst)
	tcp := p[20:]
	binary.BigEndian.PutUint16(tcp[0:], srcPort)
	binary.BigEndian.PutUint16(tcp[2:], dstPort)
	binary.BigEndian.PutUint32(tcp[4:], 0x1f2e3d4c) // sequence number
	tcp[12], tcp[13] = 5<<4, 0x02                   // 20-byte header, SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)     // window
	binary.BigEndian.PutUint16(tcp[16:], packet.Checksum(tcp, packet.PseudoHeaderSum(6, p[12:16], p[16:20], len(tcp))))
	return p
}

// icmpTimeExceeded returns an ICMP time exceeded message quoting quote.
func icmpTimeExceeded(src, dst string, quote []byte) []byte {
	p := make([]byte, 28+len(quote))
	ipv4Header(p, 1, src, dst)
	p[20] = 11 // time exceeded in transit
	copy(p[28:], quote)
	binary.BigEndian.PutUint16(p[22:], packet.Checksum(p[20:], 0))
	return p
}

func ipv4Header(p []byte, proto byte, src, dst string) {
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:20], 0))
}

func addresses(p []byte) string {
	src, _ := netip.AddrFromSlice(p[12:16])
	dst, _ := netip.AddrFromSlice(p[16:20])
	return fmt.Sprintf("%v -> %v", src, dst)
}

func checksumsOK(p []byte) bool { return verifyChecksums(p) == nil }
