//go:build cgo && !nopkcs11

package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// pkcs11Available tells tests which implementation is compiled in.
const pkcs11Available = true

// defaultMaxSessions is the session pool size when PKCS11Config.MaxSessions
// is zero: enough for a few concurrent TLS handshakes and CA signatures
// without exhausting the small session tables of real smartcards.
const defaultMaxSessions = 4

// A PKCS#11 module may be initialised only once per process, and logging in
// is per application and token, not per session. Two Tokens on the same
// module must therefore share one initialised module, and two Tokens on the
// same token share one login. The registry below keeps reference counts so
// that the last Close, and only it, logs out and finalises.
type p11Module struct {
	ctx      *pkcs11.Ctx
	refs     int
	ownsInit bool               // C_Initialize was ours, so C_Finalize is too
	logins   map[uint]*p11Login // by slot ID
}

// p11Login is the shared login state of one token (slot).
type p11Login struct {
	refs int
	// pinMAC is an HMAC of the PIN that logged in. A second OpenToken on an
	// already logged-in token gets CKR_USER_ALREADY_LOGGED_IN without the
	// token checking its PIN; comparing MACs keeps a wrong PIN from riding
	// on someone else's login. Nil when the token needed no login.
	pinMAC []byte
}

var p11Registry struct {
	sync.Mutex
	modules map[string]*p11Module
	macKey  []byte
}

// Token is an open PKCS#11 token: a loaded module, a logged-in user session
// and a pool of sessions. It is safe for concurrent use; concurrent Sign
// calls each take their own session, up to PKCS11Config.MaxSessions.
type Token struct {
	mod    *p11Module
	ctx    *pkcs11.Ctx
	modKey string
	slot   uint
	label  string
	serial string
	// anchor is a session that is never used for operations. It stays open
	// for the Token's lifetime because closing a token's last session ends
	// its login, and because object handles are valid only while the
	// application has a session.
	anchor pkcs11.SessionHandle

	sem  chan struct{}             // one slot per session in use
	idle chan pkcs11.SessionHandle // opened sessions not in use

	mu     sync.RWMutex // read: an operation is running; write: Close
	closed bool
}

// OpenToken loads cfg.Module (once per process), finds the token by label
// and/or serial number and logs in as the user with cfg.PIN.
//
// Errors wrap ErrModuleLoad, ErrTokenNotFound, ErrWrongPIN or ErrPINLocked
// and, where the token reported it, the pkcs11.Error.
func OpenToken(cfg PKCS11Config) (*Token, error) {
	if cfg.Module == "" {
		return nil, fmt.Errorf("%w: PKCS11Config.Module is empty", ErrModuleLoad)
	}
	if cfg.TokenLabel == "" && cfg.TokenSerial == "" {
		return nil, fmt.Errorf("%w: PKCS11Config needs TokenLabel or TokenSerial", ErrTokenNotFound)
	}
	if cfg.MaxSessions < 0 {
		return nil, fmt.Errorf("pki: PKCS11Config.MaxSessions %d is negative", cfg.MaxSessions)
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = defaultMaxSessions
	}

	// Opening and closing are rare; one lock keeps the reference counts,
	// C_Initialize/C_Finalize and C_Login/C_Logout consistent.
	p11Registry.Lock()
	defer p11Registry.Unlock()

	modKey, mod, err := acquireModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	t := &Token{mod: mod, ctx: mod.ctx, modKey: modKey}
	if err := t.open(cfg); err != nil {
		releaseModule(modKey, mod)
		return nil, err
	}
	return t, nil
}

// open finds the slot, opens the anchor session and logs in. It runs with
// the registry locked and leaves nothing open on failure.
func (t *Token) open(cfg PKCS11Config) error {
	slot, info, err := findSlot(t.ctx, cfg)
	if err != nil {
		return err
	}
	t.slot, t.label, t.serial = slot, info.Label, info.SerialNumber

	anchor, err := t.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return p11Error("C_OpenSession", err)
	}
	login := t.mod.logins[slot]
	if login == nil {
		login = &p11Login{}
	}
	if info.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0 || cfg.PIN != "" {
		mac := pinMAC(cfg.PIN)
		err := t.ctx.Login(anchor, pkcs11.CKU_USER, cfg.PIN)
		switch {
		case err == nil:
			login.pinMAC = mac
		case isP11Error(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
			if login.refs == 0 {
				_ = t.ctx.CloseSession(anchor)
				return fmt.Errorf("pki: token %q is already logged in by other code in this process, so the PIN cannot be checked: %w", info.Label, err)
			}
			if login.pinMAC != nil && !hmac.Equal(login.pinMAC, mac) {
				_ = t.ctx.CloseSession(anchor)
				return fmt.Errorf("%w: token %q is logged in by this process with a different PIN", ErrWrongPIN, info.Label)
			}
			login.pinMAC = mac
		default:
			_ = t.ctx.CloseSession(anchor)
			return p11Error(fmt.Sprintf("C_Login to token %q", info.Label), err)
		}
	}
	login.refs++
	if t.mod.logins == nil {
		t.mod.logins = map[uint]*p11Login{}
	}
	t.mod.logins[slot] = login
	t.anchor = anchor
	t.sem = make(chan struct{}, cfg.MaxSessions)
	t.idle = make(chan pkcs11.SessionHandle, cfg.MaxSessions)
	return nil
}

// pinMAC keys the PIN with a per-process random key so that the registry
// never holds the PIN itself.
func pinMAC(pin string) []byte {
	if p11Registry.macKey == nil {
		p11Registry.macKey = make([]byte, 32)
		_, _ = rand.Read(p11Registry.macKey) // crypto/rand.Read never fails on Linux
	}
	m := hmac.New(sha256.New, p11Registry.macKey)
	m.Write([]byte(pin))
	return m.Sum(nil)
}

// acquireModule loads and initialises a module or takes another reference to
// an already loaded one. Symlinks are resolved so that two paths to the same
// library share one initialisation.
func acquireModule(path string) (string, *p11Module, error) {
	if _, err := os.Stat(path); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrModuleLoad, err)
	}
	key, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrModuleLoad, err)
	}
	if m := p11Registry.modules[key]; m != nil {
		m.refs++
		return key, m, nil
	}
	ctx := pkcs11.New(key)
	if ctx == nil {
		return "", nil, fmt.Errorf("%w %q: dlopen failed (not a PKCS#11 module, wrong architecture or missing dependencies)", ErrModuleLoad, path)
	}
	m := &p11Module{ctx: ctx, refs: 1, ownsInit: true}
	if err := ctx.Initialize(); err != nil {
		if !isP11Error(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			ctx.Destroy()
			return "", nil, fmt.Errorf("%w %q: C_Initialize: %w", ErrModuleLoad, path, err)
		}
		// Someone else in this process initialised it; they finalise it.
		m.ownsInit = false
	}
	if p11Registry.modules == nil {
		p11Registry.modules = map[string]*p11Module{}
	}
	p11Registry.modules[key] = m
	return key, m, nil
}

// releaseModule drops a reference and finalises the module with the last one.
func releaseModule(key string, m *p11Module) {
	m.refs--
	if m.refs > 0 {
		return
	}
	if m.ownsInit {
		_ = m.ctx.Finalize()
	}
	m.ctx.Destroy()
	delete(p11Registry.modules, key)
}

// findSlot returns the one present token matching cfg.
func findSlot(ctx *pkcs11.Ctx, cfg PKCS11Config) (uint, pkcs11.TokenInfo, error) {
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, p11Error("C_GetSlotList", err)
	}
	var (
		match   []uint
		info    pkcs11.TokenInfo
		present []string
	)
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil {
			continue // removed between the two calls, or not recognised
		}
		present = append(present, fmt.Sprintf("%q (serial %q)", ti.Label, ti.SerialNumber))
		if (cfg.TokenLabel == "" || ti.Label == cfg.TokenLabel) && (cfg.TokenSerial == "" || ti.SerialNumber == cfg.TokenSerial) {
			match = append(match, s)
			info = ti
		}
	}
	switch len(match) {
	case 0:
		// Naming the tokens that are present turns a typo in the label
		// into an obvious one.
		list := "none"
		if len(present) > 0 {
			list = strings.Join(present, ", ")
		}
		return 0, info, fmt.Errorf("%w: label %q serial %q; present tokens: %s",
			ErrTokenNotFound, cfg.TokenLabel, cfg.TokenSerial, list)
	case 1:
		return match[0], info, nil
	default:
		return 0, info, fmt.Errorf("pki: %d tokens match label %q serial %q; set TokenSerial to choose one", len(match), cfg.TokenLabel, cfg.TokenSerial)
	}
}

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Serial returns the token's serial number.
func (t *Token) Serial() string { return t.serial }

// Close waits for running operations, closes the token's sessions and, if
// it was the last Token on this token or module, logs out and finalises the
// module. Signers obtained from the Token fail with ErrTokenClosed afterwards.
func (t *Token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true

	p11Registry.Lock()
	defer p11Registry.Unlock()
	var errs []error
	for drained := false; !drained; {
		select {
		case s := <-t.idle:
			if err := t.ctx.CloseSession(s); err != nil && !isRemoval(err) {
				errs = append(errs, p11Error("C_CloseSession", err))
			}
		default:
			drained = true
		}
	}
	if login := t.mod.logins[t.slot]; login != nil {
		login.refs--
		if login.refs <= 0 {
			delete(t.mod.logins, t.slot)
			if login.pinMAC != nil {
				if err := t.ctx.Logout(t.anchor); err != nil && !isRemoval(err) &&
					!isP11Error(err, pkcs11.CKR_USER_NOT_LOGGED_IN) {
					errs = append(errs, p11Error("C_Logout", err))
				}
			}
		}
	}
	if err := t.ctx.CloseSession(t.anchor); err != nil && !isRemoval(err) {
		errs = append(errs, p11Error("C_CloseSession", err))
	}
	releaseModule(t.modKey, t.mod)
	return errors.Join(errs...)
}

// withSession runs fn with a session from the pool. A session on which the
// token reported an error is closed rather than reused, because it may be
// left with an operation active or may belong to a removed token.
func (t *Token) withSession(fn func(pkcs11.SessionHandle) error) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return ErrTokenClosed
	}
	t.sem <- struct{}{}
	defer func() { <-t.sem }()

	var s pkcs11.SessionHandle
	select {
	case s = <-t.idle:
	default:
		var err error
		if s, err = t.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
			return p11Error("C_OpenSession", err)
		}
	}
	err := fn(s)
	var p11err pkcs11.Error
	if errors.As(err, &p11err) {
		_ = t.ctx.CloseSession(s)
	} else {
		t.idle <- s // never blocks: idle has room for every session sem admits
	}
	return err
}

// GenerateKey generates a key pair on the token. The private key is a token
// object that is private, sensitive, never extractable and may only sign
// (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true; CKA_EXTRACTABLE, CKA_DECRYPT
// false; CKA_SIGN true); the public key is stored next to it with the same
// label and ID so that Signer finds the pair again after a restart.
//
// label or id must be set; if a private key with the same label or the same
// ID exists, GenerateKey fails with ErrKeyExists.
func (t *Token) GenerateKey(label string, id []byte, alg KeyAlgorithm) (crypto.Signer, error) {
	if label == "" && len(id) == 0 {
		return nil, errors.New("pki: GenerateKey needs a label or an ID to find the key again")
	}
	mech, pubTmpl, err := keyGenParams(alg)
	if err != nil {
		return nil, err
	}
	privTmpl, pubTmpl := keyPairTemplates(label, id, pubTmpl)

	var signer *tokenSigner
	err = t.withSession(func(s pkcs11.SessionHandle) error {
		for _, attr := range []*pkcs11.Attribute{labelAttr(label), idAttr(id)} {
			if attr == nil {
				continue
			}
			found, err := t.findObjects(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), attr}, 1)
			if err != nil {
				return err
			}
			if len(found) > 0 {
				return fmt.Errorf("%w: label %q ID %x", ErrKeyExists, label, id)
			}
		}
		pubH, privH, err := t.ctx.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubTmpl, privTmpl)
		if err != nil {
			return p11Error(fmt.Sprintf("C_GenerateKeyPair (%v)", alg), err)
		}
		pub, err := t.readPublicKey(s, pubH)
		if err != nil {
			// Do not leave a half-usable key behind.
			_ = t.ctx.DestroyObject(s, privH)
			_ = t.ctx.DestroyObject(s, pubH)
			return err
		}
		signer = &tokenSigner{token: t, priv: privH, pub: pub, label: label, id: append([]byte(nil), id...)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return signer, nil
}

// keyPairTemplates completes the templates for C_GenerateKeyPair. It is a
// function of its own so that a unit test can pin the private key's
// attributes: tokens differ in their defaults (SoftHSM2 happens to default
// CKA_EXTRACTABLE to false), so only the template guarantees them.
func keyPairTemplates(label string, id []byte, pubTmpl []*pkcs11.Attribute) (priv, pub []*pkcs11.Attribute) {
	priv = []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		// A CA or login key signs and does nothing else; refusing the
		// other uses keeps a compromised application from turning the
		// token into a decryption or key-derivation oracle.
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}
	pub = append(pubTmpl,
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
	)
	if label != "" {
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	if len(id) > 0 {
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	return priv, pub
}

func labelAttr(label string) *pkcs11.Attribute {
	if label == "" {
		return nil
	}
	return pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)
}

func idAttr(id []byte) *pkcs11.Attribute {
	if len(id) == 0 {
		return nil
	}
	return pkcs11.NewAttribute(pkcs11.CKA_ID, id)
}

// Named curves as DER-encoded OIDs, the form of CKA_EC_PARAMS.
var (
	oidNamedCurveP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidNamedCurveP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidNamedCurveP521 = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
)

// keyGenParams returns the mechanism and algorithm-specific public key
// template for alg.
func keyGenParams(alg KeyAlgorithm) (uint, []*pkcs11.Attribute, error) {
	switch alg {
	case ECDSAP256, ECDSAP384:
		oid := oidNamedCurveP256
		if alg == ECDSAP384 {
			oid = oidNamedCurveP384
		}
		params, err := asn1.Marshal(oid)
		if err != nil {
			return 0, nil, fmt.Errorf("pki: encoding curve OID: %w", err)
		}
		return pkcs11.CKM_EC_KEY_PAIR_GEN, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC),
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params),
		}, nil
	case RSA2048, RSA3072, RSA4096:
		return pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, alg.rsaBits()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		}, nil
	default:
		return 0, nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, alg)
	}
}

// Signer finds an existing private key by label and/or ID (both must match
// if both are given) and returns it as a crypto.Signer. The public key comes
// from the public key object with the same ID (or label, if the key has no
// ID), from the private key's own attributes for RSA, or from a certificate
// object with the same ID.
func (t *Token) Signer(label string, id []byte) (crypto.Signer, error) {
	if label == "" && len(id) == 0 {
		return nil, fmt.Errorf("%w: Signer needs a label or an ID", ErrKeyNotFound)
	}
	var signer *tokenSigner
	err := t.withSession(func(s pkcs11.SessionHandle) error {
		tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
		if a := labelAttr(label); a != nil {
			tmpl = append(tmpl, a)
		}
		if a := idAttr(id); a != nil {
			tmpl = append(tmpl, a)
		}
		found, err := t.findObjects(s, tmpl, 2)
		if err != nil {
			return err
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("%w: label %q ID %x on token %q", ErrKeyNotFound, label, id, t.label)
		case 1:
		default:
			return fmt.Errorf("%w: label %q ID %x on token %q", ErrAmbiguousKey, label, id, t.label)
		}
		priv := found[0]
		attrs, err := t.ctx.GetAttributeValue(s, priv, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		})
		if err != nil {
			return p11Error("C_GetAttributeValue", err)
		}
		keyLabel, keyID := string(attrs[0].Value), attrs[1].Value
		pub, err := t.findPublicKey(s, priv, keyLabel, keyID)
		if err != nil {
			return err
		}
		signer = &tokenSigner{token: t, priv: priv, pub: pub, label: keyLabel, id: keyID}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return signer, nil
}

// DeleteKey destroys the private key and the public key objects matching
// label and/or ID. It returns ErrKeyNotFound if there is no such private key.
func (t *Token) DeleteKey(label string, id []byte) error {
	if label == "" && len(id) == 0 {
		return fmt.Errorf("%w: DeleteKey needs a label or an ID", ErrKeyNotFound)
	}
	return t.withSession(func(s pkcs11.SessionHandle) error {
		var victims []pkcs11.ObjectHandle
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
			if a := labelAttr(label); a != nil {
				tmpl = append(tmpl, a)
			}
			if a := idAttr(id); a != nil {
				tmpl = append(tmpl, a)
			}
			found, err := t.findObjects(s, tmpl, 16)
			if err != nil {
				return err
			}
			if class == pkcs11.CKO_PRIVATE_KEY && len(found) == 0 {
				return fmt.Errorf("%w: label %q ID %x on token %q", ErrKeyNotFound, label, id, t.label)
			}
			victims = append(victims, found...)
		}
		for _, h := range victims {
			if err := t.ctx.DestroyObject(s, h); err != nil {
				return p11Error("C_DestroyObject", err)
			}
		}
		return nil
	})
}

// findObjects returns up to limit objects matching tmpl.
func (t *Token) findObjects(s pkcs11.SessionHandle, tmpl []*pkcs11.Attribute, limit int) ([]pkcs11.ObjectHandle, error) {
	if err := t.ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, p11Error("C_FindObjectsInit", err)
	}
	found, _, err := t.ctx.FindObjects(s, limit)
	if ferr := t.ctx.FindObjectsFinal(s); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, p11Error("C_FindObjects", err)
	}
	return found, nil
}

// findPublicKey locates the public half of priv; see Signer.
func (t *Token) findPublicKey(s pkcs11.SessionHandle, priv pkcs11.ObjectHandle, label string, id []byte) (crypto.PublicKey, error) {
	pair := idAttr(id)
	if pair == nil {
		pair = labelAttr(label)
	}
	if pair != nil {
		found, err := t.findObjects(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), pair}, 1)
		if err != nil {
			return nil, err
		}
		if len(found) == 1 {
			return t.readPublicKey(s, found[0])
		}
	}
	// RSA private key objects carry the modulus and public exponent.
	if pub, err := t.readPublicKey(s, priv); err == nil {
		return pub, nil
	}
	if len(id) > 0 {
		found, err := t.findObjects(s, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		}, 1)
		if err != nil {
			return nil, err
		}
		if len(found) == 1 {
			attrs, err := t.ctx.GetAttributeValue(s, found[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if err != nil {
				return nil, p11Error("C_GetAttributeValue", err)
			}
			cert, err := x509.ParseCertificate(attrs[0].Value)
			if err != nil {
				return nil, fmt.Errorf("pki: certificate next to key %q: %w", label, err)
			}
			return cert.PublicKey, nil
		}
	}
	return nil, fmt.Errorf("%w: no public key or certificate for private key label %q ID %x", ErrKeyNotFound, label, id)
}

// readPublicKey reads an RSA or EC public key from a key object.
func (t *Token) readPublicKey(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	attrs, err := t.ctx.GetAttributeValue(s, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return nil, p11Error("C_GetAttributeValue(CKA_KEY_TYPE)", err)
	}
	keyType, err := attrUint(attrs[0])
	if err != nil {
		return nil, err
	}
	switch keyType {
	case pkcs11.CKK_RSA:
		attrs, err := t.ctx.GetAttributeValue(s, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, p11Error("C_GetAttributeValue(CKA_MODULUS)", err)
		}
		return rsaPublicKey(attrs[0].Value, attrs[1].Value)
	case pkcs11.CKK_EC:
		attrs, err := t.ctx.GetAttributeValue(s, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, p11Error("C_GetAttributeValue(CKA_EC_POINT)", err)
		}
		return ecPublicKey(attrs[0].Value, attrs[1].Value)
	default:
		return nil, fmt.Errorf("%w: PKCS#11 key type 0x%x", ErrUnsupportedKey, keyType)
	}
}

// attrUint decodes a CK_ULONG attribute, which the module writes in host
// byte order and width.
func attrUint(a *pkcs11.Attribute) (uint, error) {
	var v uint64
	switch len(a.Value) {
	case 8:
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(a.Value[i])
		}
	case 4:
		for i := 3; i >= 0; i-- {
			v = v<<8 | uint64(a.Value[i])
		}
	default:
		return 0, fmt.Errorf("pki: PKCS#11 attribute 0x%x has %d bytes, want a CK_ULONG", a.Type, len(a.Value))
	}
	return uint(v), nil
}

// rsaPublicKey builds an RSA public key from big-endian attribute values.
func rsaPublicKey(modulus, exponent []byte) (*rsa.PublicKey, error) {
	n := new(big.Int).SetBytes(modulus)
	e := new(big.Int).SetBytes(exponent)
	if n.Sign() <= 0 || n.BitLen() < 1024 {
		return nil, fmt.Errorf("%w: RSA modulus of %d bits", ErrUnsupportedKey, n.BitLen())
	}
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return nil, fmt.Errorf("%w: RSA public exponent %v", ErrUnsupportedKey, e)
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// ecPublicKey builds an ECDSA public key from CKA_EC_PARAMS (a DER named
// curve OID) and CKA_EC_POINT (a DER OCTET STRING holding the uncompressed
// point; some modules return the bare point, which is accepted too).
func ecPublicKey(params, point []byte) (*ecdsa.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: CKA_EC_PARAMS is not a named curve", ErrUnsupportedKey)
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidNamedCurveP256):
		curve = elliptic.P256()
	case oid.Equal(oidNamedCurveP384):
		curve = elliptic.P384()
	case oid.Equal(oidNamedCurveP521):
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("%w: curve %v", ErrUnsupportedKey, oid)
	}
	rawLen := 1 + 2*((curve.Params().BitSize+7)/8)
	raw := point
	if !(len(point) == rawLen && point[0] == 4) {
		var inner []byte
		if rest, err := asn1.Unmarshal(point, &inner); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: CKA_EC_POINT is neither a DER OCTET STRING nor a point", ErrUnsupportedKey)
		}
		raw = inner
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: CKA_EC_POINT: %w", ErrUnsupportedKey, err)
	}
	return pub, nil
}

// tokenSigner is a private key on a token. It implements crypto.Signer.
type tokenSigner struct {
	token *Token
	priv  pkcs11.ObjectHandle
	pub   crypto.PublicKey
	label string
	id    []byte
}

// Public returns the *ecdsa.PublicKey or *rsa.PublicKey of the key.
func (k *tokenSigner) Public() crypto.PublicKey { return k.pub }

// Sign signs digest on the token. The token's own random number generator
// is used, so rand is ignored. ECDSA signatures are returned ASN.1 DER
// encoded like ecdsa.SignASN1; RSA uses PKCS#1 v1.5, or PSS if opts is an
// *rsa.PSSOptions (PSSSaltLengthAuto is taken as the hash length, which is
// what TLS 1.3 requires and every verifier accepts).
func (k *tokenSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("pki: Sign needs SignerOpts naming the hash")
	}
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("pki: digest of %d bytes for %v, want %d", len(digest), h, h.Size())
	}
	switch k.pub.(type) {
	case *ecdsa.PublicKey:
		raw, err := k.token.sign(k.priv, pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest)
		if err != nil {
			return nil, err
		}
		return ecdsaRawToASN1(raw)
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			mech, err := pssMechanism(pss, h)
			if err != nil {
				return nil, err
			}
			return k.token.sign(k.priv, mech, digest)
		}
		input, err := pkcs1DigestInfo(h, digest)
		if err != nil {
			return nil, err
		}
		return k.token.sign(k.priv, pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), input)
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, k.pub)
	}
}

// sign runs one C_SignInit/C_Sign on a pooled session.
func (t *Token) sign(key pkcs11.ObjectHandle, mech *pkcs11.Mechanism, data []byte) ([]byte, error) {
	var sig []byte
	err := t.withSession(func(s pkcs11.SessionHandle) error {
		if err := t.ctx.SignInit(s, []*pkcs11.Mechanism{mech}, key); err != nil {
			return p11Error("C_SignInit", err)
		}
		var err error
		if sig, err = t.ctx.Sign(s, data); err != nil {
			return p11Error("C_Sign", err)
		}
		return nil
	})
	return sig, err
}

// pssHashes maps a hash to its PKCS#11 digest mechanism and MGF1 variant.
var pssHashes = map[crypto.Hash][2]uint{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// pssMechanism builds CKM_RSA_PKCS_PSS with CK_RSA_PKCS_PSS_PARAMS.
func pssMechanism(opts *rsa.PSSOptions, h crypto.Hash) (*pkcs11.Mechanism, error) {
	mechs, ok := pssHashes[h]
	if !ok {
		return nil, fmt.Errorf("%w: RSA-PSS with hash %v", ErrUnsupportedAlgorithm, h)
	}
	salt := opts.SaltLength
	switch {
	case salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash:
		// Go's software signer takes "auto" as the largest salt; the
		// token needs a number, and the hash length is what TLS 1.3 and
		// X.509 (RFC 4055) expect.
		salt = h.Size()
	case salt < 0:
		return nil, fmt.Errorf("pki: invalid PSS salt length %d", salt)
	}
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(mechs[0], mechs[1], uint(salt))), nil
}

// Digest algorithm OIDs for the PKCS#1 v1.5 DigestInfo (RFC 8017 A.2.4).
var digestInfoOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA1:   {1, 3, 14, 3, 2, 26},
	crypto.SHA224: {2, 16, 840, 1, 101, 3, 4, 2, 4},
	crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
}

// pkcs1DigestInfo returns the input of CKM_RSA_PKCS for a PKCS#1 v1.5
// signature: CKM_RSA_PKCS only pads, so the DigestInfo naming the hash must
// be prepended here. Hash 0 and MD5SHA1 (TLS 1.0/1.1) sign the bare digest,
// as rsa.SignPKCS1v15 does.
func pkcs1DigestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	if h == 0 || h == crypto.MD5SHA1 {
		return digest, nil
	}
	oid, ok := digestInfoOIDs[h]
	if !ok {
		return nil, fmt.Errorf("%w: RSA PKCS#1 v1.5 with hash %v", ErrUnsupportedAlgorithm, h)
	}
	der, err := asn1.Marshal(struct {
		Algorithm pkix.AlgorithmIdentifier
		Digest    []byte
	}{pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}, digest})
	if err != nil {
		return nil, fmt.Errorf("pki: encoding DigestInfo: %w", err)
	}
	return der, nil
}

// ecdsaRawToASN1 converts the r||s signature of CKM_ECDSA into the ASN.1
// SEQUENCE { r INTEGER, s INTEGER } that X.509 and TLS use. encoding/asn1
// takes care of minimal encoding: leading zero bytes of r and s are dropped
// and a zero byte is added where the high bit would make them negative.
func ecdsaRawToASN1(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("pki: token returned an ECDSA signature of %d bytes", len(raw))
	}
	half := len(raw) / 2
	r := new(big.Int).SetBytes(raw[:half])
	s := new(big.Int).SetBytes(raw[half:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, errors.New("pki: token returned an ECDSA signature with r or s zero")
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		return nil, fmt.Errorf("pki: encoding ECDSA signature: %w", err)
	}
	return der, nil
}

// isP11Error reports whether err is the PKCS#11 return value code.
func isP11Error(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// isRemoval reports whether err means the token or session is gone.
func isRemoval(err error) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	switch uint(e) {
	case pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED:
		return true
	}
	return false
}

// p11Error wraps a PKCS#11 error with the sentinel that matches its code, so
// callers can use errors.Is with the sentinel and errors.As with
// pkcs11.Error on the same value.
func p11Error(op string, err error) error {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("pki: PKCS#11 %s: %w", op, err)
	}
	switch {
	case uint(e) == pkcs11.CKR_PIN_INCORRECT || uint(e) == pkcs11.CKR_PIN_LEN_RANGE || uint(e) == pkcs11.CKR_PIN_INVALID:
		return fmt.Errorf("%w: %s: %w", ErrWrongPIN, op, err)
	case uint(e) == pkcs11.CKR_PIN_LOCKED:
		return fmt.Errorf("%w: %s: %w", ErrPINLocked, op, err)
	case isRemoval(err):
		return fmt.Errorf("%w: %s: %w", ErrTokenRemoved, op, err)
	default:
		return fmt.Errorf("pki: PKCS#11 %s: %w", op, err)
	}
}
