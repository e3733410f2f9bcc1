// Package app assembles a complete remotegate broker from a Config: the
// database (broker/store) in a private data directory with its secrets
// sealed, the installation's licenses, the configuration from a broker.yaml
// or the built-in demo setup, the CA and the servers' keys, and, when it
// runs, the switch (package broker), OpenVPN on UDP and TCP, the IKEv2
// responder, the management API over HTTPS (broker/api) and the Prometheus
// metrics. examples/broker is this package behind flags.
//
// A vendor embeds the broker in a gateway or server with Open and Run:
//
//	b, err := app.Open(ctx, app.Config{
//		DataDir:        "/var/lib/remotegate",
//		ConfigFile:     "/etc/remotegate/broker.yaml", // or "" for the built-in setup
//		VendorKeyFiles: []string{"/usr/share/remotegate/vendor.pub"},
//		Logger:         logger,
//		OnReady: func(r app.Ready) {
//			// Show r.BootstrapPassword once to whoever installs the product.
//		},
//	})
//	if err != nil { ... }
//	defer b.Close()
//	err = b.Run(ctx) // until ctx ends (SIGTERM, shutdown)
//
// The zero Config is the demo broker: state in ./remotegate-data, the
// management API on 127.0.0.1:8443, metrics on 127.0.0.1:9155 (Off turns
// either off), the base license of 4 participants.
//
// Everything is stored: broker.yaml is applied into the database when its
// content changes, settings included (listen address, ports, the public
// address profiles connect to, the tunnel pool), so a later Open without
// the file, another process on the same data directory (WriteProfile,
// Status) and the running broker all work from the same configuration;
// changes made through the API take effect on live tunnels and stay.
//
// The HTTPS listener serves the management API under /api/; the rest of
// its paths (the web console at /, enrollment at /.well-known/est/) are
// left for what is mounted beside it (see httpsHandler).
package app
