package console

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// result is the API's answer to an in-process call.
type result struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *result) ok() bool { return r.Status >= 200 && r.Status < 300 }

// message is the API's error text ({"error": ...}), or the status.
func (r *result) message() string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.Body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return http.StatusText(r.Status)
}

// decode reads a successful answer into v.
func (r *result) decode(v any) bool { return r.ok() && json.Unmarshal(r.Body, v) == nil }

// recorder is the ResponseWriter an in-process call writes to: it keeps
// the answer for the console to render.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

// apiRequest builds the request for the API: the caller's token, and the
// original request's address (the login limits count per address) and TLS
// state (certificate login).
func (c *Console) apiRequest(orig *http.Request, token, method, path string, body io.Reader) (*http.Request, error) {
	r, err := http.NewRequestWithContext(orig.Context(), method, path, body)
	if err != nil {
		return nil, err
	}
	r.RemoteAddr, r.TLS, r.Host = orig.RemoteAddr, orig.TLS, orig.Host
	if r.Body == nil {
		// A server's handlers read the body of every request, as a
		// server's requests always have one.
		r.Body = http.NoBody
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r, nil
}

// api calls the API in-process and buffers its answer. body is nil, raw
// bytes, or a value sent as JSON.
func (c *Console) api(orig *http.Request, token, method, path string, body any) *result {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return &result{Status: http.StatusInternalServerError, Body: errorJSON(err.Error())}
		}
		rd = bytes.NewReader(j)
	}
	r, err := c.apiRequest(orig, token, method, path, rd)
	if err != nil {
		return &result{Status: http.StatusInternalServerError, Body: errorJSON(err.Error())}
	}
	rec := &recorder{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &result{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
}

func errorJSON(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return b
}

// streamer passes a successful answer straight to the browser as a
// download (a backup can be large) and keeps an error answer for the
// console to render as a page.
type streamer struct {
	w       http.ResponseWriter
	header  http.Header
	status  int
	err     bytes.Buffer
	started bool
}

func (s *streamer) Header() http.Header { return s.header }
func (s *streamer) WriteHeader(status int) {
	if s.status != 0 {
		return
	}
	s.status = status
	if status == http.StatusOK {
		s.started = true
		h := s.w.Header()
		for _, k := range []string{"Content-Type", "Content-Disposition", "Content-Length"} {
			if v := s.header.Get(k); v != "" {
				h.Set(k, v)
			}
		}
		s.w.WriteHeader(status)
	}
}
func (s *streamer) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	if s.started {
		return s.w.Write(p)
	}
	if s.err.Len() < 64<<10 {
		s.err.Write(p)
	}
	return len(p), nil
}

// download calls the API and streams a 200 answer to the browser as it
// comes; any other answer is returned for the caller to render, with
// started false.
func (c *Console) download(q *req, method, path string, body io.Reader, header http.Header) (res *result, started bool) {
	r, err := c.apiRequest(q.r, q.token, method, path, body)
	if err != nil {
		return &result{Status: http.StatusInternalServerError, Body: errorJSON(err.Error())}, false
	}
	for k, v := range header {
		r.Header[k] = v
	}
	s := &streamer{w: q.w, header: http.Header{}}
	c.cfg.API.ServeHTTP(s, r)
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.started {
		return nil, true
	}
	return &result{Status: s.status, Header: s.header, Body: s.err.Bytes()}, false
}

// esc escapes a name for a path segment of an API route.
func esc(name string) string { return url.PathEscape(name) }

// splitList reads a comma- or space-separated list of names.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }
