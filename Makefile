# remotegate: build, test, benchmark, fuzz.
#
# make test   installs the Debian packages the interop tests need (if missing),
#             then checks that go.mod is tidy, runs vet, the unit and interop
#             tests, and the race tests.
# make bench  runs the benchmarks.
# make fuzz   runs every Fuzz target for FUZZTIME each.
# make perf   compares examples/ovpn-server and the broker's relay with stock openvpn, and the broker's IPsec relay with a strongSwan hub (throughput and CPU, side by side).
# make scale  fills examples/ovpn-server and stock openvpn with 1,000, 5,000 and 10,000 tunnels from examples/loadgen (memory, CPU per handshake, idle CPU, side by side).
# make demo   runs the example OpenVPN server with throw-away keys (writes a client profile).
# make screenshots  writes a PNG of each page of the web console (headless chromium, as root) to docs/console/.

GO        ?= go
FUZZTIME  ?= 10s
DEB_PKGS  := openvpn iperf3 iproute2 iputils-ping tcpdump openssl softhsm2 opensc strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins chromium libnss3-tools
# The interop tests build the example programs and run stock peers in network
# namespaces; they need root. Without root they skip, saying so (in CI they fail).
# The browser tests (internal/browsertest and the console's) drive Debian's
# chromium; libnss3-tools (certutil, pk12util) puts the broker's CA and a
# client certificate into the browser's NSS database.

.PHONY: all build test deps tidy vet unit race bench fuzz perf scale demo screenshots

all: build

build:
	$(GO) build ./...

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "WARNING: missing Debian packages:$$missing (run 'make deps' as root); interop tests will skip"; \
		fi; \
	fi

# go.mod and go.sum must say exactly what the code imports.
tidy:
	$(GO) mod tidy -diff

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 15m ./...

race:
	$(GO) test -count=1 -race -short -timeout 15m ./...

test: deps tidy vet unit race

perf: deps
	RG_PERF=1 $(GO) test -count=1 -run 'TestThroughputVsStock|TestRelayVsStock|TestIPsecRelayVsStrongSwan' -v -timeout 30m ./internal/ovpninterop/

# RG_SCALE=1: 1,000, 5,000 and 10,000 tunnels; RG_SCALE=1000 (or a list) for
# other sizes; RG_SCALE_HOLD, RG_SCALE_K, RG_SCALE_PROTO: see TestScaleVsStock.
# loadgen's clients need memory (about 0.5 MiB each today) and descriptors.
RG_SCALE ?= 1
scale: deps
	ulimit -n 65536 2>/dev/null || true; RG_SCALE=$(RG_SCALE) $(GO) test -count=1 -run '^TestScaleVsStock$$' -v -timeout 90m ./internal/ovpninterop/

# TestScreenshots fills an in-process broker with a plant's worth of data and
# saves each page. CI=1: a browser that cannot start fails the target rather
# than skipping it with nothing written.
screenshots: deps
	CI=1 RG_SCREENSHOTS=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestScreenshots$$' -v ./broker/console/

demo:
	$(GO) run ./examples/broker -data /tmp/remotegate-data

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
