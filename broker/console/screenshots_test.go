package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/remotegate/remotegate/policy"
	"github.com/remotegate/remotegate/tunnel"
)

// screenshotsEnv names the directory TestScreenshots writes to (make
// screenshots sets it to docs/console).
const screenshotsEnv = "RG_SCREENSHOTS"

// TestScreenshots fills a broker with a plant's worth of configuration
// (devices with aliased LANs, users, roles, groups, relations, a license,
// certificates, live sessions and the events they caused) and saves a
// full-page PNG of the login page and of every page in an administrator's
// navigation to $RG_SCREENSHOTS: login.png, dashboard.png, users.png, ...
func TestScreenshots(t *testing.T) {
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		t.Skip(screenshotsEnv + " is not set: it names the directory the screenshots of the console are written to (make screenshots)")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, labOptions{licenses: true})
	root := l.ready()
	l.fillForScreenshots(root)

	b := l.newBrowser(nil)
	shots := map[string]string{} // file name -> path, to check them after
	write := func(name string, png []byte) {
		t.Helper()
		path := filepath.Join(dir, name+".png")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, compactPNG(t, png), 0o644); err != nil {
			t.Fatal(err)
		}
		shots[name] = path
	}
	save := func(name string) { t.Helper(); write(name, b.Screenshot()) }
	if status := b.Navigate(l.url + "/login"); status != http.StatusOK {
		t.Fatalf("the login page: %d", status)
	}
	save("login")
	if status := l.login(b, labAdmin, labPassword); status != http.StatusOK {
		t.Fatalf("login: %d", status)
	}
	var nav []struct{ Path, Label string }
	b.Eval(`[...document.querySelectorAll('nav[aria-label="Main"] a')].map(a => ({path: a.getAttribute('href'), label: a.textContent}))`, &nav)
	if len(nav) < 10 {
		t.Fatalf("the administrator's navigation has %d entries: %+v", len(nav), nav)
	}
	// The dashboard's whole page is dashboard-full.png; dashboard.png is
	// its first screen, which the README shows above the commands.
	names := map[string]string{"/": "dashboard-full"}
	for _, n := range nav {
		name := names[n.Path]
		if name == "" {
			name = n.Path[1:]
		}
		if status := b.Navigate(l.url + n.Path); status != http.StatusOK {
			t.Fatalf("%s (%s): %d", n.Path, n.Label, status)
		}
		save(name)
	}
	// A device's page, with its networks and certificate.
	if status := b.Navigate(l.url + "/devices/press-line-2"); status != http.StatusOK {
		t.Fatalf("a device's page: %d", status)
	}
	save("device")
	b.Navigate(l.url + "/")
	if err := chromedp.Do(b.Context(), chromedp.EmulateViewport(1280, 640)); err != nil {
		t.Fatalf("the dashboard's first screen: %v", err)
	}
	first, err := chromedp.Run(b.Context(), chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("the dashboard's first screen: %v", err)
	}
	write("dashboard", first)
	noProblems(t, b)

	for name, path := range shots {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %dx%d, %d KB", name, cfg.Width, cfg.Height, fi.Size()>>10)
		if cfg.Width != 1280 || cfg.Height < 600 {
			t.Errorf("%s is %dx%d: not a page", path, cfg.Width, cfg.Height)
		}
		// They are committed to the repository.
		if fi.Size() > 300<<10 {
			t.Errorf("%s has %d KB; keep screenshots under 300 KB", path, fi.Size()>>10)
		}
	}
}

// fillForScreenshots creates, through the API as an administrator would,
// and through the broker as tunnels would, what the pages show.
func (l *lab) fillForScreenshots(root string) {
	l.t.Helper()
	post := func(path string, body any) []byte {
		l.t.Helper()
		return l.apiExpect(http.StatusCreated, "POST", path, root, body)
	}
	// The base license admits 4 participants; a pack of 64 more.
	post("/api/v1/licenses", l.licenseFile("RG-2026-000064", 64))

	post("/api/v1/roles", map[string]any{"name": "operator", "rights": []string{"manage-devices", "view-events", "connect-vpn"}})
	post("/api/v1/roles", map[string]any{"name": "auditor", "rights": []string{"view-events"}})
	for _, g := range []map[string]any{
		{"name": "service-engineers"},
		{"name": "automation-team", "intra": true},
		{"name": "plants-north"},
		{"name": "plants-south"},
		{"name": "all-plants", "subgroups": []string{"plants-north", "plants-south"}},
	} {
		post("/api/v1/groups", g)
	}
	type net map[string]string
	for _, d := range []map[string]any{
		{"name": "press-line-1", "groups": []string{"plants-north"}, "networks": []net{{"lan": "192.168.0.0/24", "alias": "10.100.1.0/24"}}},
		{"name": "press-line-2", "groups": []string{"plants-north"}, "networks": []net{{"lan": "192.168.0.0/24", "alias": "10.100.2.0/24"}}},
		{"name": "paint-shop", "groups": []string{"plants-north"}, "networks": []net{{"lan": "192.168.10.0/24", "alias": "10.100.3.0/24"}, {"lan": "172.16.5.0/24"}}},
		{"name": "bottling-munich", "groups": []string{"plants-south"}, "networks": []net{{"lan": "192.168.0.0/24", "alias": "10.100.4.0/24"}}},
		{"name": "warehouse-lyon", "groups": []string{"plants-south"}, "networks": []net{{"lan": "10.20.0.0/16"}}},
		{"name": "test-bench", "groups": []string{"plants-south"}, "networks": []net{{"lan": "192.168.99.0/24", "alias": "10.100.99.0/24"}}, "disabled": true},
	} {
		post("/api/v1/devices", d)
	}
	for _, u := range []map[string]any{
		{"name": "anna.schmidt", "roles": []string{policy.RoleVPNUser}, "groups": []string{"service-engineers"}, "password": labPassword},
		{"name": "ben.okafor", "roles": []string{policy.RoleVPNUser}, "groups": []string{"service-engineers"}},
		{"name": "carla.rossi", "roles": []string{"operator"}, "groups": []string{"automation-team"}, "password": labPassword},
		{"name": "dmitri.volkov", "roles": []string{"operator"}, "groups": []string{"automation-team"}},
		{"name": "eva.lindqvist", "roles": []string{"auditor"}, "password": labPassword},
	} {
		post("/api/v1/users", u)
	}
	now := time.Now().UTC().Truncate(time.Hour)
	for _, r := range []map[string]any{
		{"name": "service-to-north", "from": "service-engineers", "to": "plants-north", "direction": "one-way", "services": []string{"tcp/102", "tcp/502", "tcp/443", "icmp/8"}},
		{"name": "automation-all", "from": "automation-team", "to": "all-plants", "direction": "both"},
		{"name": "vendor-window", "from": "service-engineers", "to": "plants-south", "direction": "one-way", "services": []string{"tcp/4840"},
			"not_before": now.Add(24 * time.Hour), "not_after": now.Add(72 * time.Hour)},
		{"name": "legacy-vnc", "from": "service-engineers", "to": "plants-south", "direction": "one-way", "services": []string{"tcp/5900"}, "disabled": true},
	} {
		post("/api/v1/relations", r)
	}

	// Certificates: a profile for each participant that connects, and
	// one revoked after a laptop went missing.
	for _, name := range []string{"press-line-1", "press-line-2", "paint-shop", "bottling-munich", "anna.schmidt", "ben.okafor", "carla.rossi"} {
		l.apiExpect(http.StatusOK, "POST", "/api/v1/participants/"+name+"/profile", root, map[string]string{"format": "ovpn"})
	}
	var lost struct {
		Certificate struct{ Serial string }
	}
	if err := json.Unmarshal(post("/api/v1/certificates", map[string]string{"common_name": "ben.okafor", "profile": "user"}), &lost); err != nil || lost.Certificate.Serial == "" {
		l.t.Fatalf("issue: %+v %v", lost, err)
	}
	l.apiExpect(http.StatusOK, "POST", "/api/v1/certificates/"+lost.Certificate.Serial+"/revoke", root, map[string]any{"reason": 1}) // key compromise

	// Tunnels, as the transports report them: three up, one that came and
	// went, and refusals.
	ctx := context.Background()
	var id atomic.Uint64
	connect := func(name, proto, remote string, up time.Duration, in, out uint64) *demoSession {
		l.t.Helper()
		s := &demoSession{id: id.Add(1), name: name, proto: proto, remote: netip.MustParseAddrPort(remote),
			since: time.Now().Add(-up), in: in, out: out}
		if _, err := l.broker.Admit(ctx, tunnel.Identity{Name: name}, s.remote); err != nil {
			l.t.Fatalf("admit %s: %v", name, err)
		}
		l.broker.Up(s)
		return s
	}
	connect("press-line-1", "openvpn/udp", "203.0.113.17:51820", 26*time.Hour+12*time.Minute, 1_284_113_407, 88_204_511)
	connect("paint-shop", "ipsec", "198.51.100.40:4500", 3*time.Hour+41*time.Minute, 45_118_020, 9_771_300)
	connect("bottling-munich", "openvpn/tcp", "192.0.2.88:40112", 51*time.Minute, 2_004_119, 614_880)
	s := connect("carla.rossi", "openvpn/udp", "100.64.12.9:1194", 9*time.Minute, 312_450, 5_880_214)
	l.broker.Down(s, errors.New("the peer ended the session"))
	connect("anna.schmidt", "openvpn/udp", "100.64.7.31:60433", 17*time.Minute, 2_145_990, 40_221_712)
	for _, who := range []string{"plc-unknown", "test-bench"} {
		if _, err := l.broker.Admit(ctx, tunnel.Identity{Name: who}, netip.MustParseAddrPort("198.51.100.99:1194")); err == nil {
			l.t.Fatalf("%s admitted", who)
		}
	}
	// Logins of the other administrators.
	l.apiLogin("carla.rossi", labPassword)
	l.apiLogin("eva.lindqvist", labPassword)
}

// demoSession is a live tunnel as a transport reports it to the broker.
type demoSession struct {
	id       uint64
	name     string
	proto    string
	remote   netip.AddrPort
	since    time.Time
	in, out  uint64
	closed   atomic.Bool
	sentPkts atomic.Uint64
}

func (s *demoSession) ID() uint64                       { return s.id }
func (s *demoSession) Identity() tunnel.Identity        { return tunnel.Identity{Name: s.name} }
func (s *demoSession) Remote() netip.AddrPort           { return s.remote }
func (s *demoSession) Protocol() string                 { return s.proto }
func (s *demoSession) Since() time.Time                 { return s.since }
func (s *demoSession) HandshakeDuration() time.Duration { return 40 * time.Millisecond }
func (s *demoSession) Counters() tunnel.Counters {
	return tunnel.Counters{BytesIn: s.in, BytesOut: s.out, PacketsIn: s.in / 900, PacketsOut: s.out/900 + s.sentPkts.Load()}
}

// Send counts what the switch forwards; the packets go nowhere.
func (s *demoSession) Send(bufs [][]byte, _ int) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("session %d of %s: closed", s.id, s.name)
	}
	s.sentPkts.Add(uint64(len(bufs)))
	return len(bufs), nil
}

func (s *demoSession) Close(error) error { s.closed.Store(true); return nil }

// compactPNG re-encodes a screenshot with a palette of its 256 most
// frequent colours, which is a third of the size for pages of text on
// flat colours and looks the same: the few other colours are antialiased
// edges, drawn in the nearest colour of the palette.
func compactPNG(t *testing.T, data []byte) []byte {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decoding a screenshot: %v", err)
	}
	bounds := img.Bounds()
	counts := map[color.RGBA]int{}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			counts[color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)]++
		}
	}
	colors := make([]color.RGBA, 0, len(counts))
	for c := range counts {
		colors = append(colors, c)
	}
	slices.SortFunc(colors, func(a, b color.RGBA) int {
		if d := counts[b] - counts[a]; d != 0 {
			return d
		}
		return int(a.R)<<16 | int(a.G)<<8 | int(a.B) - (int(b.R)<<16 | int(b.G)<<8 | int(b.B)) // a stable order
	})
	pal := make(color.Palette, 0, 256)
	for _, c := range colors[:min(len(colors), 256)] {
		pal = append(pal, c)
	}
	out := image.NewPaletted(bounds, pal)
	index := make(map[color.RGBA]uint8, len(colors))
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.SetColorIndex(x, y, i)
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out); err != nil {
		t.Fatalf("encoding a screenshot: %v", err)
	}
	if buf.Len() >= len(data) {
		return data
	}
	return buf.Bytes()
}
