package console_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/remotegate/remotegate/broker"
	"github.com/remotegate/remotegate/broker/api"
	"github.com/remotegate/remotegate/broker/console"
	"github.com/remotegate/remotegate/broker/store"
	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// The console is served next to the API on one HTTPS listener: /api/ to
// the API, everything else to the console (the product also mounts EST
// under /.well-known/est/).
func Example() {
	dir, err := os.MkdirTemp("", "console-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	key := make([]byte, store.SecretKeySize) // a real broker keeps a random key beside the database
	st, err := store.OpenWith(filepath.Join(dir, "broker.db"), store.Options{SecretKey: key})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	snap, err := policy.Compile(&policy.Model{})
	if err != nil {
		log.Fatal(err)
	}
	b, err := broker.New(broker.Config{Policy: snap, Pool: netip.MustParsePrefix("10.8.0.0/24")})
	if err != nil {
		log.Fatal(err)
	}
	ca, err := pki.NewCA(pki.CAConfig{OnIssue: func(r pki.Record) error { return st.PutCertificate(ctx, r) }})
	if err != nil {
		log.Fatal(err)
	}
	apiServer, err := api.New(ctx, api.Config{Store: st, Broker: b, CA: ca, Verifier: &pki.Verifier{CA: ca}})
	if err != nil {
		log.Fatal(err)
	}
	con, err := console.New(console.Config{API: apiServer, CA: ca.Certificate(),
		Addresses: []console.Address{{Name: "management (HTTPS)", Address: "127.0.0.1:8443"}}})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", apiServer)
	mux.Handle("/", con)

	// Served over TLS in a real broker; here one request in memory.
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "https://broker.example/users", nil))
	fmt.Println(w.Code, w.Header().Get("Location"))
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "https://broker.example/login", nil))
	fmt.Println(w.Code, w.Header().Get("X-Frame-Options"))
	// Output:
	// 303 /login?next=%2Fusers
	// 200 DENY
}
