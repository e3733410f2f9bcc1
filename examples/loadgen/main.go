package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(mainErr(os.Args[1:], os.Stdout, os.Stderr))
}

// mainErr runs loadgen and returns the exit status: 0 when every tunnel
// came up (and stayed up while held), 1 when some did not or the run
// failed, 2 for a bad command line.
func mainErr(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A second interrupt ends the program at once: the first one asks for
	// a clean shutdown, which waits for the servers' goodbyes.
	go func() { <-ctx.Done(); stop() }()
	tty := false
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	g, err := setup(ctx, o, stdout, stderr, tty)
	if err != nil {
		fmt.Fprintln(stderr, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	r, err := g.run(ctx)
	if o.json != "" {
		if werr := writeJSON(o.json, stdout, r); werr != nil {
			fmt.Fprintln(stderr, werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "interrupted")
		return 1
	}
	if !r.complete(o) {
		return 1
	}
	return 0
}

// complete says whether every tunnel asked for came up and stayed up.
func (r *Report) complete(o *options) bool {
	up := 0
	for _, s := range r.Phases {
		up += s.Up
	}
	if up != o.n+o.ipsecN {
		return false
	}
	return r.Hold == nil || r.Hold.StillUp == r.Hold.Tunnels
}

func writeJSON(path string, stdout io.Writer, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return nil
}
