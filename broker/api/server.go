package api

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/model"
	"github.com/remotegate/remotegate/broker/profile"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/license"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

//go:embed openapi.json
var openAPIDoc []byte

// Errors of New.
var (
	ErrConfig = errors.New("api: invalid configuration")
)

// ProfileFunc writes an OpenVPN client profile (.ovpn, everything inline)
// for a participant whose certificate and key are given in PEM.
type ProfileFunc func(w io.Writer, participant string, certPEM, keyPEM []byte) error

// NativeProfileFunc writes a user's profile for a native IKEv2 client in
// format.
type NativeProfileFunc func(w io.Writer, format profile.Format, participant string, cert *x509.Certificate, key crypto.Signer, password string) error

// Config configures the management API.
type Config struct {
	// Store holds the configuration, accounts, certificates and events.
	Store *store.Store
	// Broker is the running broker: configuration changes are applied to
	// it, and its sessions are listed and terminated.
	Broker *broker.Broker
	// CA issues, renews and revokes certificates. Its OnIssue hook should
	// store each record (see StoreCertificate).
	CA *pki.CA
	// Verifier maps client certificates to users for certificate
	// (smartcard) login; nil disables that login.
	Verifier *pki.Verifier
	// Profile renders .ovpn profiles; nil disables the ovpn format.
	Profile ProfileFunc
	// SwanctlProfile renders IPsec profiles for strongSwan (a tar archive
	// for /etc/swanctl); nil disables the swanctl format.
	SwanctlProfile ProfileFunc
	// NativeProfile renders a user's profile for a native IKEv2 client
	// (profile.FormatApple, FormatWindows, FormatAndroid) with the
	// certificate and key in a PKCS#12 file protected by password; nil
	// disables those formats.
	NativeProfile NativeProfileFunc
	// Compile turns a stored configuration into what the broker runs; nil
	// uses model.Compile.
	Compile func(*store.Config) (*policy.Snapshot, map[string]broker.DeviceNetworks, error)
	// Applied is model.Config.Applied: told every configuration in force.
	Applied func(*store.Config)
	// TokenLifetime of a login session; zero means 12 hours.
	TokenLifetime time.Duration
	// PasswordCost of new password hashes; the zero value is the default
	// (argon2id with 64 MiB and 3 passes). Tests lower it.
	PasswordCost PasswordCost
	// LoginLimit bounds password guessing (see LoginLimit for the rules);
	// the zero value blocks a client address for 15 minutes after 5
	// failures in 15 minutes and spaces the attempts for a name 1 minute
	// apart after 5 failures of that name. Negative values are refused.
	LoginLimit LoginLimit
	// ProfileLimit bounds the profiles a user exports for itself through
	// POST /api/v1/profile (see ProfileLimit); the zero value allows 5 in
	// any 24 hours. Negative values are refused.
	ProfileLimit ProfileLimit
	// MaxConcurrentHashes bounds the password hashes computed at once
	// (logins, password changes, new passwords), each taking the memory of
	// its argon2 cost; a login that finds them all busy is answered 429 at
	// once rather than queued. Zero derives it from a memory budget of
	// 256 MiB at PasswordCost (4 at the default 64 MiB), at most one per
	// CPU, at least 1. Negative is refused.
	MaxConcurrentHashes int
	// Licenses are the installation's participant licenses: they are
	// listed, added and released through the API, creating participants
	// beyond their capacity is refused (ErrCapacity), and the broker admits
	// only as many participants as they allow. Nil means the product does
	// not limit participants.
	Licenses *license.State
	// InstallationKey signs the release statements of released licenses;
	// with nil, licenses cannot be released through the API.
	InstallationKey ed25519.PrivateKey
	// InstallationSecrets names the store's secrets that identify this
	// installation (what licenses are bound to). A restore keeps their
	// values unless it is asked to bring them along
	// (?installation=restore, when moving to new hardware), so that a
	// backup of another broker does not make a second installation of
	// one. Nil means SecretInstallationID and SecretInstallationKey.
	InstallationSecrets []string
	// EventRetention is how long the event log keeps an event: Maintain
	// removes older ones. Zero means DefaultEventRetention; a negative
	// value is refused (the log must not grow without bound).
	EventRetention time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
	// Now; nil is time.Now.
	Now func() time.Time
}

// Server is the management API: an http.Handler for the routes under
// /api/v1, documented in openapi.json.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	limiter *limiter
	// profiles counts the profiles users export for themselves.
	profiles *profileLimiter
	// gate bounds the password hashes computed at once.
	gate hashGate
	// checkHash checks a password against a stored hash: checkPassword,
	// wrapped by tests to observe and hold the hashes.
	checkHash func(phc, password string) (bool, error)
	// dummy is a hash at PasswordCost that unknown names are checked
	// against, so that they take as long as known ones.
	dummy string

	// m takes the domain steps the handlers call.
	m *model.Manager
}

// New returns the API server. It loads the stored configuration and
// applies it to the broker.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Broker == nil || cfg.CA == nil {
		return nil, fmt.Errorf("%w: Store, Broker and CA are required", ErrConfig)
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = 12 * time.Hour
	}
	if !cfg.LoginLimit.valid() {
		return nil, fmt.Errorf("%w: LoginLimit has a negative field: %+v", ErrConfig, cfg.LoginLimit)
	}
	if cfg.ProfileLimit.Count < 0 || cfg.ProfileLimit.Window < 0 {
		return nil, fmt.Errorf("%w: ProfileLimit has a negative field: %+v", ErrConfig, cfg.ProfileLimit)
	}
	slots := cfg.MaxConcurrentHashes
	switch {
	case slots < 0:
		return nil, fmt.Errorf("%w: MaxConcurrentHashes %d is negative", ErrConfig, slots)
	case slots == 0:
		slots = defaultHashSlots(cfg.PasswordCost)
	}
	dummy, err := HashPassword("not a password", cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("api: the hash for unknown names: %w", err)
	}
	if cfg.EventRetention < 0 {
		return nil, fmt.Errorf("%w: negative EventRetention %v", ErrConfig, cfg.EventRetention)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, mux: http.NewServeMux(),
		gate: make(hashGate, slots), checkHash: checkPassword, dummy: dummy}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = newLimiter(cfg.LoginLimit, s.now)
	s.profiles = newProfileLimiter(cfg.ProfileLimit)
	for _, rt := range routes() {
		s.mux.HandleFunc(rt.method+" "+rt.path, s.wrap(rt))
	}
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	m, err := model.New(model.Config{
		Store: cfg.Store, Broker: cfg.Broker, CA: cfg.CA, Compile: cfg.Compile, Applied: cfg.Applied,
		// New passwords are hashed within the same bound as logins,
		// waiting for a slot: their callers are authenticated.
		HashPassword: func(ctx context.Context, password string) (string, error) {
			if err := s.gate.wait(ctx); err != nil {
				return "", fmt.Errorf("api: waiting to hash a password: %w", err)
			}
			defer s.gate.done()
			return HashPassword(password, cfg.PasswordCost)
		},
		Licenses: cfg.Licenses, InstallationKey: cfg.InstallationKey, InstallationSecrets: cfg.InstallationSecrets,
		EventRetention: cfg.EventRetention, Logger: cfg.Logger, Now: s.now,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.m = m
	if err := s.Load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Manager returns the domain steps the API calls, for a product that
// takes them without HTTP (the same checks, the same event log).
func (s *Server) Manager() *model.Manager { return s.m }

// Load reads the stored configuration and applies it to the broker; New
// does it once (see model.Manager.Load).
func (s *Server) Load(ctx context.Context) error { return s.m.Load(ctx) }

// ServeHTTP serves the API. It is meant to be served over HTTPS only:
// Strict-Transport-Security keeps a browser that has seen it once (the web
// console's users) from ever trying plain HTTP to this host for a year,
// where a token or password could be read or a page replaced.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// caller is the authenticated account of a request.
type caller struct {
	name      string
	tokenHash []byte
	bootstrap bool
}

// Request body limits. The routes open to anyone (login) take a name and a
// password, a few hundred bytes, so an anonymous client cannot make the
// server read and decode more than that; the others take up to 16 MiB,
// but for a restore, which streams a backup of up to store.MaxBackupSize
// to a temporary file and bounds it itself (route.streamsBody).
const (
	maxBody       = 16 << 20
	maxPublicBody = 8 << 10
)

// bodyLimit is the largest request body rt accepts.
func bodyLimit(rt route) int64 {
	switch {
	case rt.streamsBody():
		return store.MaxBackupSize
	case rt.access == public:
		return maxPublicBody
	case rt.op == "addLicense":
		return maxLicenseFile
	}
	return maxBody
}

func (s *Server) wrap(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil {
			// A request made in-process (http.NewRequest with no body,
			// served by calling ServeHTTP) has none; the handlers read
			// one, as a server's requests always carry it.
			r.Body = http.NoBody
		}
		// A body announced as too large is refused before anything else,
		// authentication included; one that grows too large while it is
		// read fails the read with *http.MaxBytesError (writeBodyError).
		// A route that streams its body bounds it itself.
		if limit := bodyLimit(rt); !rt.streamsBody() {
			if r.ContentLength > limit {
				writeTooLarge(w, limit)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		var c *caller
		if rt.access != public {
			var err error
			if c, err = s.authenticate(r); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="remotegate"`)
				writeError(w, http.StatusUnauthorized, err.Error())
				return
			}
			switch {
			case c.bootstrap && rt.access != bootstrap && rt.access != anyAccount:
				writeError(w, http.StatusForbidden, "the bootstrap administrator must first name an administrator (POST /api/v1/bootstrap)")
				return
			case rt.access == bootstrap && !c.bootstrap:
				writeError(w, http.StatusForbidden, "only the bootstrap administrator may call this")
				return
			case rt.access == rightNeeded && !s.can(c.name, rt.right):
				writeError(w, http.StatusForbidden, fmt.Sprintf("%q lacks the right %s", c.name, rt.right))
				return
			}
		}
		rt.handle(s, w, r, c)
	}
}

// can reports whether the account is an enabled user (not a device) of
// the model in force holding the rights r (none: just enabled).
func (s *Server) can(name string, r policy.Rights) bool { return s.m.Can(name, r) }

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request, _ *caller) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
}

// writeJSON writes v with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeBodyError answers a request whose body could not be read or
// decoded: 413 if it was over the limit, else 400.
func writeBodyError(w http.ResponseWriter, err error) {
	if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeTooLarge(w, tooLarge.Limit)
		return
	}
	writeError(w, http.StatusBadRequest, err.Error())
}

// writeTooLarge answers 413 for a body over limit bytes.
func writeTooLarge(w http.ResponseWriter, limit int64) {
	size := fmt.Sprintf("%d bytes", limit)
	switch {
	case limit >= 1<<20 && limit%(1<<20) == 0:
		size = fmt.Sprintf("%d MiB", limit>>20)
	case limit >= 1<<10 && limit%(1<<10) == 0:
		size = fmt.Sprintf("%d KiB", limit>>10)
	}
	writeError(w, http.StatusRequestEntityTooLarge, "the request body is larger than the limit of "+size)
}

// readJSON decodes the request body strictly into v.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	if dec.More() {
		return errors.New("request body: more than one JSON value")
	}
	return nil
}

// event appends to the event log (model.Manager.Record); a failure is
// logged, not returned.
func (s *Server) event(r *http.Request, kind, participant, actor, msg string, attrs map[string]string) {
	s.m.Record(r.Context(), kind, participant, actor, msg, attrs)
}

// writeModelError answers a domain step's error with the status its kind
// says: the one place the model's errors become HTTP statuses.
func writeModelError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, model.ErrForbidden):
		status = http.StatusForbidden
	case errors.Is(err, model.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, model.ErrConflict), errors.Is(err, model.ErrCapacity):
		status = http.StatusConflict
	case errors.Is(err, model.ErrInvalid):
		status = http.StatusBadRequest
	}
	writeError(w, status, clientMessage(err))
}

// clientMessage is what a client is told of a domain step's refusal: the
// reason, without the Go package's sentinel ("model: invalid: a password
// needs at least 12 characters" reads "a password needs at least 12
// characters"). The capacity refusal keeps its sentinel's words, which say
// what happened.
func clientMessage(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{model.ErrInvalid, model.ErrNotFound, model.ErrConflict, model.ErrForbidden} {
		if rest, ok := strings.CutPrefix(msg, sentinel.Error()+": "); ok {
			return rest
		}
	}
	return strings.TrimPrefix(msg, "model: ")
}

// clientIP is the remote address without the port, for rate limiting.
func clientIP(r *http.Request) string { return model.RemoteIP(r.RemoteAddr) }
