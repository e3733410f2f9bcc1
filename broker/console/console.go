package console

import (
	"crypto/rand"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/remotegate/remotegate/broker/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("console: invalid configuration")

// DefaultIdleTimeout is Config.IdleTimeout's zero value.
const DefaultIdleTimeout = 30 * time.Minute

// DefaultMaxSessions is Config.MaxSessions's zero value.
const DefaultMaxSessions = 4096

// Config configures the console. Only API is required.
type Config struct {
	// API is the management API the console is a client of.
	API *api.Server
	// CA is the broker's CA certificate, shown on the system page; nil
	// shows none.
	CA *x509.Certificate
	// Addresses are the broker's listening addresses as the product
	// describes them ("OpenVPN UDP": "0.0.0.0:1194", ...), for the system
	// page.
	Addresses []Address
	// MetricsURL is where the broker's metrics are served, for the system
	// page; empty says there are none.
	MetricsURL string
	// IdleTimeout logs a session out after this long without a request;
	// zero means DefaultIdleTimeout. The absolute limit is the API token's
	// lifetime.
	IdleTimeout time.Duration
	// MaxSessions bounds the sessions tracked for the idle timeout; when
	// it is reached, the longest idle session of the account holding the
	// most is dropped (logged out), so that one account logging in again
	// and again ends only its own. Zero means DefaultMaxSessions.
	MaxSessions int
	// Now; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Address is one listening address of the broker.
type Address struct {
	Name    string // what listens: "management (HTTPS)", "OpenVPN UDP", ...
	Address string // host:port or a URL
}

// Console is the web console, an http.Handler for every path but the API's.
type Console struct {
	cfg   Config
	now   func() time.Time
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
	sess  *sessions
	// csrfKey keys the CSRF tokens; drawn at start, so tokens of a past
	// process are refused like its sessions.
	csrfKey []byte
	cop     *http.CrossOriginProtection
	static  fs.FS
}

// New returns the console for cfg.API.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil {
		return nil, fmt.Errorf("%w: API is required", ErrConfig)
	}
	switch {
	case cfg.IdleTimeout < 0:
		return nil, fmt.Errorf("%w: negative IdleTimeout %v", ErrConfig, cfg.IdleTimeout)
	case cfg.IdleTimeout == 0:
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case cfg.MaxSessions < 0:
		return nil, fmt.Errorf("%w: negative MaxSessions %d", ErrConfig, cfg.MaxSessions)
	case cfg.MaxSessions == 0:
		cfg.MaxSessions = DefaultMaxSessions
	}
	c := &Console{cfg: cfg, now: cfg.Now, log: cfg.Logger, mux: http.NewServeMux(),
		csrfKey: make([]byte, 32), cop: http.NewCrossOriginProtection()}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if _, err := rand.Read(c.csrfKey); err != nil {
		return nil, fmt.Errorf("console: CSRF key: %w", err)
	}
	c.sess = newSessions(cfg.MaxSessions)
	var err error
	if c.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	if c.static, err = fs.Sub(staticFS, "static"); err != nil {
		return nil, fmt.Errorf("console: static files: %w", err)
	}
	c.routes()
	return c, nil
}

// parseTemplates parses each page together with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		if path.Base(name) == "layout.html" {
			continue
		}
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, name)
		}
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[strings.TrimSuffix(path.Base(name), ".html")] = t
	}
	return pages, nil
}

// securityHeaders go on every response. The policy allows the console's
// own style sheet and nothing else: no script at all, no inline style, no
// framing, forms only to this origin.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Strict-Transport-Security", "max-age=31536000")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// ServeHTTP serves the console: every path the product does not route to
// the API. It is meant for HTTPS only (the cookies are Secure).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if strings.HasPrefix(r.URL.Path, "/static/") {
		w.Header().Set("Cache-Control", "max-age=3600")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() {
	m := c.mux
	files := http.StripPrefix("/static/", http.FileServerFS(c.static))
	m.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		// Files only: a directory's listing is nobody's business.
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginPassword)
	m.HandleFunc("POST /login/certificate", c.loginCertificate)
	m.HandleFunc("POST /logout", c.authed(c.logout))
	m.HandleFunc("GET /bootstrap", c.authed(c.bootstrapPage))
	m.HandleFunc("POST /bootstrap", c.authed(c.bootstrapPost))
	m.HandleFunc("GET /password", c.authed(c.passwordPage))
	m.HandleFunc("POST /password", c.authed(c.passwordPost))
	m.HandleFunc("GET /profile", c.authed(c.ownProfilePage))
	m.HandleFunc("POST /profile", c.authed(c.ownProfilePost))

	m.HandleFunc("GET /{$}", c.authed(c.dashboard))
	m.HandleFunc("GET /participants", c.authed(c.participantsPage))
	m.HandleFunc("GET /participants/{name}/profile", c.authed(c.profilePage))
	m.HandleFunc("POST /participants/{name}/profile", c.authed(c.profilePost))
	m.HandleFunc("GET /sessions", c.authed(c.sessionsPage))
	m.HandleFunc("GET /sessions/{participant}/terminate", c.authed(c.terminateConfirm))
	m.HandleFunc("POST /sessions/{participant}/terminate", c.authed(c.terminatePost))

	m.HandleFunc("GET /users", c.authed(c.usersPage))
	m.HandleFunc("POST /users", c.authed(c.userCreate))
	m.HandleFunc("GET /users/{name}", c.authed(c.userPage))
	m.HandleFunc("POST /users/{name}", c.authed(c.userUpdate))
	m.HandleFunc("POST /users/{name}/password", c.authed(c.userPassword))
	m.HandleFunc("GET /users/{name}/delete", c.authed(c.deleteConfirm("user", "/users", "/api/v1/users/")))
	m.HandleFunc("POST /users/{name}/delete", c.authed(c.deletePost("user", "/users", "/api/v1/users/")))

	m.HandleFunc("GET /roles", c.authed(c.rolesPage))
	m.HandleFunc("POST /roles", c.authed(c.roleCreate))
	m.HandleFunc("GET /roles/{name}", c.authed(c.rolePage))
	m.HandleFunc("POST /roles/{name}", c.authed(c.roleUpdate))
	m.HandleFunc("GET /roles/{name}/delete", c.authed(c.deleteConfirm("role", "/roles", "/api/v1/roles/")))
	m.HandleFunc("POST /roles/{name}/delete", c.authed(c.deletePost("role", "/roles", "/api/v1/roles/")))

	m.HandleFunc("GET /devices", c.authed(c.devicesPage))
	m.HandleFunc("POST /devices", c.authed(c.deviceCreate))
	m.HandleFunc("GET /devices/{name}", c.authed(c.devicePage))
	m.HandleFunc("POST /devices/{name}", c.authed(c.deviceUpdate))
	m.HandleFunc("POST /devices/{name}/enrollment", c.authed(c.deviceEnrollment))
	m.HandleFunc("GET /devices/{name}/delete", c.authed(c.deleteConfirm("device", "/devices", "/api/v1/devices/")))
	m.HandleFunc("POST /devices/{name}/delete", c.authed(c.deletePost("device", "/devices", "/api/v1/devices/")))

	m.HandleFunc("GET /groups", c.authed(c.groupsPage))
	m.HandleFunc("POST /groups", c.authed(c.groupCreate))
	m.HandleFunc("GET /groups/{name}", c.authed(c.groupPage))
	m.HandleFunc("POST /groups/{name}", c.authed(c.groupUpdate))
	m.HandleFunc("GET /groups/{name}/delete", c.authed(c.deleteConfirm("group", "/groups", "/api/v1/groups/")))
	m.HandleFunc("POST /groups/{name}/delete", c.authed(c.deletePost("group", "/groups", "/api/v1/groups/")))

	m.HandleFunc("GET /relations", c.authed(c.relationsPage))
	m.HandleFunc("POST /relations", c.authed(c.relationCreate))
	m.HandleFunc("GET /relations/{name}", c.authed(c.relationPage))
	m.HandleFunc("POST /relations/{name}", c.authed(c.relationUpdate))
	m.HandleFunc("POST /relations/{name}/enable", c.authed(c.relationSwitch(false)))
	m.HandleFunc("POST /relations/{name}/disable", c.authed(c.relationSwitch(true)))
	m.HandleFunc("GET /relations/{name}/delete", c.authed(c.deleteConfirm("relation", "/relations", "/api/v1/relations/")))
	m.HandleFunc("POST /relations/{name}/delete", c.authed(c.deletePost("relation", "/relations", "/api/v1/relations/")))

	m.HandleFunc("GET /certificates", c.authed(c.certificatesPage))
	m.HandleFunc("POST /certificates", c.authed(c.certificateIssue))
	m.HandleFunc("GET /certificates/{serial}/pem", c.authed(c.certificatePEM))
	m.HandleFunc("POST /certificates/{serial}/renew", c.authed(c.certificateRenew))
	m.HandleFunc("GET /certificates/{serial}/revoke", c.authed(c.revokeConfirm))
	m.HandleFunc("POST /certificates/{serial}/revoke", c.authed(c.revokePost))

	m.HandleFunc("GET /events", c.authed(c.eventsPage))
	m.HandleFunc("GET /events/csv", c.authed(c.eventsCSV))

	m.HandleFunc("GET /licenses", c.authed(c.licensesPage))
	m.HandleFunc("POST /licenses", c.authed(c.licenseAdd))
	m.HandleFunc("GET /licenses/{number}/release", c.authed(c.releaseConfirm))
	m.HandleFunc("POST /licenses/{number}/release", c.authed(c.releasePost))

	m.HandleFunc("GET /backup", c.authed(c.backupPage))
	m.HandleFunc("POST /backup", c.authed(c.backupPost))
	m.HandleFunc("POST /restore", c.authedStream(c.restorePost))

	m.HandleFunc("GET /system", c.authed(c.systemPage))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, http.StatusNotFound, "There is no page here.")
	})
}
