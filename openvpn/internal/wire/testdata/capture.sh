#!/bin/sh
# Regenerates the stock-openvpn captures the wire tests decode:
#   testdata/capture/<variant>.pcap    control handshake between a stock server and client on 127.0.0.1
#   testdata/capture/<variant>/        the lab keys that protected it (throw-away keys)
# Needs root (the server uses a tun device), openvpn 2.6, openssl and tcpdump.
# Usage: sh testdata/capture.sh   (from the package directory)
set -eu

out=$(cd "$(dirname "$0")" && pwd)/capture
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# EC P-256 lab PKI.
cd "$work"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj /CN=lab-ca -days 3650 -out ca.crt
for who in server client; do
	openssl ecparam -name prime256v1 -genkey -noout -out $who.key
	openssl req -new -key $who.key -subj /CN=lab-$who -out $who.csr
	if [ $who = server ]; then eku=serverAuth; else eku=clientAuth; fi
	printf 'keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=%s\n' $eku > $who.ext
	openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
		-extfile $who.ext -out $who.crt
done

# capture VARIANT PORT SERVER-OPTIONS CLIENT-OPTIONS
capture() {
	v=$1 port=$2
	mkdir -p "$out/$v"
	tcpdump -i lo -U -w "$out/$v.pcap" -c 24 "udp port $port" 2>/dev/null &
	dump=$!
	sleep 1
	openvpn --local 127.0.0.1 --port "$port" --proto udp --dev tun --dev-type tun \
		--server 10.77.$((port % 200)).0 255.255.255.0 --topology subnet --dh none \
		--ca ca.crt --cert server.crt --key server.key --keepalive 10 120 --verb 3 \
		$3 > "$work/$v-server.log" 2>&1 &
	srv=$!
	sleep 1
	openvpn --client --dev null --ifconfig-noexec --route-noexec --remote 127.0.0.1 "$port" \
		--proto udp --nobind --remote-cert-tls server --ca ca.crt --cert client.crt --key client.key \
		--verb 3 $4 > "$work/$v-client.log" 2>&1 &
	cli=$!
	sleep 6
	kill $cli $srv 2>/dev/null || true
	sleep 1
	kill $dump 2>/dev/null || true
	wait $dump 2>/dev/null || true
	grep -q "Initialization Sequence Completed" "$work/$v-client.log" ||
		{ echo "$v: handshake did not complete" >&2; cat "$work/$v-client.log" >&2; exit 1; }
}

k="$out/tls-crypt"; mkdir -p "$k"
openvpn --genkey secret "$k/tc.key"
capture tls-crypt 31941 "--tls-crypt $k/tc.key" "--tls-crypt $k/tc.key"

k="$out/tls-auth"; mkdir -p "$k"
openvpn --genkey secret "$k/ta.key"
capture tls-auth 31942 "--tls-auth $k/ta.key 0" "--tls-auth $k/ta.key 1"

k="$out/tls-auth-sha256"; mkdir -p "$k"
openvpn --genkey secret "$k/ta.key"
capture tls-auth-sha256 31943 "--tls-auth $k/ta.key 0 --auth SHA256" "--tls-auth $k/ta.key 1 --auth SHA256"

k="$out/tls-auth-nodir"; mkdir -p "$k"
openvpn --genkey secret "$k/ta.key"
capture tls-auth-nodir 31944 "--tls-auth $k/ta.key" "--tls-auth $k/ta.key"

k="$out/tls-crypt-v2"; mkdir -p "$k"
openvpn --genkey tls-crypt-v2-server "$k/server.key"
openvpn --tls-crypt-v2 "$k/server.key" --genkey tls-crypt-v2-client "$k/client.key"
capture tls-crypt-v2 31945 "--tls-crypt-v2 $k/server.key" "--tls-crypt-v2 $k/client.key"

echo "captures written to $out"
