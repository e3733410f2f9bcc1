// Command licensetool is the vendor side of remotegate licensing: it creates
// a vendor key pair, issues licenses, inspects license files and verifies
// the release statements installations produce. Everything is files, so it
// works for air-gapped plants.
//
//	licensetool keygen -out vendor                  write vendor.pub and vendor.key (mode 0600)
//	licensetool issue -key vendor.key -number RG-1 -participants 64 \
//	    [-product remotegate] [-edition standard] [-issued 2026-11-23] \
//	    [-expires 2027-11-23] [-installation ID] [-out RG-1.lic]
//	licensetool inspect -pub vendor.pub [-pub old.pub] [-product P] FILE
//	licensetool verify-release FILE
//
// issue writes the license to standard output unless -out is given. inspect
// prints the fields and whether the signature verifies with one of the
// given public keys. Every command exits with status 1 on failure.
package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/remotegate/remotegate/license"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "licensetool:", err)
			os.Exit(1)
		}
	}
}

const usage = `usage:
  licensetool keygen -out NAME                 write NAME.pub and NAME.key
  licensetool issue -key NAME.key -number N -participants P [flags] > N.lic
  licensetool inspect -pub NAME.pub [-pub OLD.pub] FILE
  licensetool verify-release FILE
Run "licensetool COMMAND -h" for a command's flags.
`

// run executes the command in args, writing results to stdout and flag
// errors and usage to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "keygen":
		return keygen(args, stdout, stderr)
	case "issue":
		return issue(args, stdout, stderr)
	case "inspect":
		return inspect(args, stdout, stderr)
	case "verify-release":
		return verifyRelease(args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("licensetool "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and checks the number of positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != positional {
		fs.Usage()
		if positional == 0 {
			return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
		}
		return fmt.Errorf("%s: want %d file argument, got %d", fs.Name(), positional, fs.NArg())
	}
	return nil
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", stderr)
	out := fs.String("out", "", "write the key pair to `NAME`.pub and NAME.key (required)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		fs.Usage()
		return errors.New("keygen: -out is required")
	}
	pub, priv, err := license.GenerateVendorKey(nil)
	if err != nil {
		return err
	}
	pubFile, keyFile := *out+".pub", *out+".key"
	// Create the private key first: if it exists, nothing is overwritten.
	if err := writeNew(keyFile, license.MarshalVendorPrivateKey(priv), 0o600); err != nil {
		return err
	}
	if err := writeNew(pubFile, license.MarshalVendorPublicKey(pub), 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (key ID %s)\n", pubFile, keyFile, license.KeyID(pub))
	fmt.Fprintf(stdout, "ship %s with the product; keep %s on the signing machine\n", pubFile, keyFile)
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(name)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}

func issue(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("issue", stderr)
	keyFile := fs.String("key", "", "vendor private key `file` (required)")
	var l license.License
	fs.StringVar(&l.Number, "number", "", "license `number`, e.g. RG-2026-000123 (required)")
	participants := fs.String("participants", "", "`number` of participants the license adds, e.g. 64, 256 or 1024 (required)")
	fs.StringVar(&l.Product, "product", "remotegate", "`product` the license is for")
	fs.StringVar(&l.Edition, "edition", "standard", "product `edition`")
	issued := fs.String("issued", "", "issue `date` YYYY-MM-DD (default today, UTC)")
	expires := fs.String("expires", "", "expiry `date` YYYY-MM-DD (default: never)")
	fs.StringVar(&l.Installation, "installation", "", "bind to this installation `ID` (default: any installation)")
	out := fs.String("out", "", "write the license to `file` instead of standard output")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *keyFile == "" || l.Number == "" || *participants == "" {
		fs.Usage()
		return errors.New("issue: -key, -number and -participants are required")
	}
	var err error
	if l.Participants, err = strconv.Atoi(*participants); err != nil || strconv.Itoa(l.Participants) != *participants {
		return fmt.Errorf("issue: -participants %q: want a decimal number without leading zeros", *participants)
	}
	if *issued == "" {
		l.Issued = time.Now().UTC()
	} else if l.Issued, err = time.Parse(time.DateOnly, *issued); err != nil {
		return fmt.Errorf("issue: -issued %q: want YYYY-MM-DD", *issued)
	}
	if *expires != "" {
		if l.Expires, err = time.Parse(time.DateOnly, *expires); err != nil {
			return fmt.Errorf("issue: -expires %q: want YYYY-MM-DD", *expires)
		}
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	priv, err := license.ParseVendorPrivateKey(data)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	file, err := license.Issue(priv, l)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(file)
		return err
	}
	return writeNew(*out, file, 0o644)
}

// keyFiles is a repeatable -pub flag.
type keyFiles []ed25519.PublicKey

func (k *keyFiles) String() string { return "" }

func (k *keyFiles) Set(name string) error {
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	pub, err := license.ParseVendorPublicKey(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*k = append(*k, pub)
	return nil
}

func inspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", stderr)
	var keys keyFiles
	fs.Var(&keys, "pub", "vendor public key `file` to verify with (required; repeat for several keys)")
	product := fs.String("product", "", "`product` the license must be for (default: the product it names)")
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	if len(keys) == 0 {
		fs.Usage()
		return errors.New("inspect: -pub is required")
	}
	name := fs.Arg(0)
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	l, _, _, err := license.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	tw := &table{w: stdout}
	tw.row("number", l.Number)
	tw.row("product", l.Product)
	tw.row("edition", l.Edition)
	tw.row("participants", fmt.Sprintf("+%d", l.Participants))
	tw.row("issued", l.Issued.Format(time.DateOnly))
	if l.Expires.IsZero() {
		tw.row("expires", "never")
	} else {
		tw.row("expires", l.Expires.Format(time.DateOnly))
	}
	if l.Installation == "" {
		tw.row("installation", "any")
	} else {
		tw.row("installation", l.Installation)
	}
	tw.row("key", l.KeyID)
	v := &license.Verifier{Product: *product, Keys: keys}
	if v.Product == "" {
		v.Product = l.Product
	}
	if _, err := v.Verify(data); err != nil {
		tw.row("signature", "NOT VERIFIED: "+err.Error())
		return fmt.Errorf("%s: %w", name, err)
	}
	tw.row("signature", "verified with vendor key "+l.KeyID)
	return tw.err
}

func verifyRelease(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify-release", stderr)
	if err := parseFlags(fs, args, 1); err != nil {
		return err
	}
	name := fs.Arg(0)
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	r, _, _, err := license.ParseRelease(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	tw := &table{w: stdout}
	tw.row("number", r.Number)
	tw.row("installation", r.Installation)
	tw.row("released", r.Released.Format(time.RFC3339))
	tw.row("installation-key", fmt.Sprintf("%s (key ID %s)", base64.StdEncoding.EncodeToString(r.InstallationKey), license.KeyID(r.InstallationKey)))
	if _, err := license.VerifyRelease(data); err != nil {
		tw.row("verified", "NO: "+err.Error())
		return fmt.Errorf("%s: %w", name, err)
	}
	tw.row("verified", "yes (check the installation key against the activation record)")
	return tw.err
}

// table prints aligned "name: value" rows.
type table struct {
	w   io.Writer
	err error
}

func (t *table) row(name, value string) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, "%-17s %s\n", name+":", strings.TrimSpace(value))
	}
}
