// Package console is the broker's web console: server-rendered pages an
// administrator works in, served at / on the HTTPS listener of the
// management API, from templates and a style sheet embedded in the binary
// (no script, no build step, no CDN, no external fonts: the broker runs in
// plants without internet).
//
// # A client of the API, in the same process
//
// The console holds no data and makes no decision of its own about who may
// do what. Every page reads what it shows, and every form makes its change,
// by calling the management API's own handler (api.Server.ServeHTTP) on a
// request the console builds: the route, a JSON body, the caller's API token
// as "Authorization: Bearer", and the original request's RemoteAddr and TLS
// state. The answer is buffered by a small ResponseWriter (downloads,
// backups and restores stream through). So:
//
//   - every page and every action checks exactly the right the API checks
//     for the same operation, through the same code (the route table in
//     broker/api/routes.go): the console cannot drift from the API, and a
//     right added to an endpoint is enforced here at once;
//   - a change made in the console is applied to the live broker exactly as
//     through the API (the same transaction, the same checks on the grants,
//     the same event with the same actor);
//   - a 403 from the API is the console's 403 page (with status 403 on the
//     direct URL too), a 401 sends to the login page.
//
// The one page without an API operation, the system page, is shown to
// accounts holding the right system-settings as GET /api/v1/account
// reports it; the navigation also shows only what that account's rights
// will let it open, which is a convenience, not the check.
//
// # Sessions
//
// Logging in (by name and password, or with a client certificate of the
// broker's CA that the TLS listener asks for) calls the API's login and
// keeps the API token in a cookie that is Secure, HttpOnly, SameSite=Strict
// and host-only (the __Host- prefix). Its absolute lifetime is the token's;
// the idle timeout (Config.IdleTimeout) is tracked in memory, keyed by a
// hash of the token and bounded in size (when full, the account holding
// the most sessions loses its longest idle one, so that no account can log
// others out by logging in again and again): a restart logs everyone out,
// which is the safe direction. Logging out ends the token at the API.
//
// Every state change is a POST carrying a CSRF token, an HMAC-SHA256 of the
// session token under a key drawn at start, compared in constant time; a
// POST from another origin (Origin or Sec-Fetch-Site) is refused before
// that. The login form has its own token, bound to a pre-session cookie, so
// that no other site can log a browser in to an account of its choosing.
// The page a login leads on to is only ever a path of the console (no
// scheme, host, control character or backslash, which browsers would read
// as another host), and the notices a page shows after a change carry a
// MAC bound to the session, so a link from elsewhere can neither send a
// browser off-site after login nor put words in the console's mouth.
// Every response carries a strict Content-Security-Policy (no inline
// script or style), X-Frame-Options DENY, HSTS, nosniff and no referrer;
// pages are not cached. Every value reaches a page through html/template,
// which escapes it for where it lands: names come from administrators, and
// certificate subjects and event messages from anyone who can reach the
// broker.
//
// # The bootstrap
//
// A fresh broker has the one-time administrator "admin". Logged in, it is
// led to one page only, which names the real administrator (POST
// /api/v1/bootstrap) and then logs it out; the API deletes the account, so
// "admin" no longer logs in, and the login page says why.
package console
