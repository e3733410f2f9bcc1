// Package browsertest drives a real, headless Chromium from tests, through
// the DevTools protocol (github.com/chromedp/chromedp).
//
// New starts one browser for one test, with a profile, a HOME and an NSS
// database of its own in the test's temporary directory, and stops it in
// t.Cleanup, checking that no Chromium process of it is left behind. The
// browser needs no network beyond loopback.
//
// TLS is verified the way it is for a person: the CA given in
// Options.TrustCA is imported into the profile's NSS database
// ($HOME/.pki/nssdb, read by Chromium on Linux) as trusted for TLS servers,
// instead of turning certificate errors off, so a test also proves that the
// server presents a chain a browser accepts. Options.ClientCert is imported
// into the same database (a smartcard in the browser, as far as the server
// can tell) and selected without a dialog by an AutoSelectCertificateForUrls
// entry in the profile's own preferences; nothing outside the test's
// directories is written, so browsers of parallel tests do not see each
// other's certificates.
//
// Options.Netns runs the browser in a network namespace (`ip netns exec`),
// so that a test reaches a server on that namespace's loopback address, the
// broker's console in its own namespace say, as a person at that machine
// would. chromedp drives the browser over a pipe, not a DevTools port, so
// the namespace needs nothing but its loopback.
//
// The helpers (Navigate, Fill, Click, Submit, WaitText, Text, Status,
// Download, Screenshot, Cookies) fail the test with what the page showed when
// a step does not succeed within Options.StepTimeout, so scenarios read as a
// list of steps. Elements are found as a person finds them: form fields by
// the text of their label (or their id), buttons and links by their visible
// text (or their id); a "css:" prefix selects by CSS instead. Problems
// collects what a person would find in the DevTools console (failed loads,
// Content-Security-Policy violations, exceptions); the browser reaches
// nothing but localhost and 127.0.0.1, so a page that needs the
// internet shows it there.
//
// A scenario reads:
//
//	b := browsertest.New(t, browsertest.Options{TrustCA: ca.Cert})
//	b.Navigate(consoleURL + "/login")
//	b.Fill("Name", "admin")
//	b.Fill("Password", password)
//	if status := b.Submit("Log in"); status != http.StatusOK {
//		t.Fatalf("login: %d", status)
//	}
//	b.WaitText("Dashboard")
//	profile := b.Download(func() { b.Click("Download .ovpn") })
//	b.SaveScreenshot("docs/console/dashboard.png")
//
// A test that cannot run (not root, chromium or certutil missing) is skipped
// with the reason; when the CI environment variable is set it fails instead,
// as the interop tests do (netns.Refuse). Require refuses the same way
// without starting a browser, for a test that builds something expensive
// before it can create one.
package browsertest
