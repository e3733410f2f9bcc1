package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/remotegate/remotegate/broker/app"
)

// A broker opened on a fresh data directory with the built-in demo setup,
// its API and metrics off, exports the engineer's OpenVPN profile.
func Example() {
	dir, err := os.MkdirTemp("", "broker-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	b, err := app.Open(ctx, app.Config{
		DataDir:       filepath.Join(dir, "data"),
		SecretKeyFile: filepath.Join(dir, "broker.key"),
		APIAddr:       app.Off,
		MetricsAddr:   app.Off,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	// b.Run(ctx) would serve it until ctx ends.
	var profile bytes.Buffer
	if err := b.WriteProfile(ctx, &profile, "engineer", app.FormatOVPN); err != nil {
		log.Fatal(err)
	}
	for line := range strings.Lines(profile.String()) {
		if strings.HasPrefix(line, "remote ") {
			fmt.Print(line)
		}
	}
	// Output: remote 127.0.0.1 1194
}
