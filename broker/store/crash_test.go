package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remotegate/remotegate/policy"
)

// crashChildEnv names the database the child of TestCrashSafety writes to.
const crashChildEnv = "REMOTEGATE_STORE_CRASH_CHILD_DB"

// TestHelperWriter is the child process of TestCrashSafety: it writes until
// it is killed, printing "ack N" after write N returned.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("child process of TestCrashSafety")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	deadline := time.Now().Add(30 * time.Second) // never outlive a lost parent
	for n := 1; time.Now().Before(deadline); n++ {
		_, err := s.Update(bg, func(c *Config) error {
			c.Model.Relations = append(c.Model.Relations,
				policy.Relation{Name: fmt.Sprintf("r-%d", n), From: "a", To: "b"})
			return nil
		})
		if err == nil {
			_, err = s.Append(bg, Event{Kind: "config_change", Message: strconv.Itoa(n)})
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Printf("ack %d\n", n)
	}
	os.Exit(3)
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	killAfter := 50 + rand.IntN(100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())

	acked := 0
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Errorf("child: %s", line)
			continue
		}
		n, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue // the testing framework's own output
		}
		v, err := strconv.Atoi(n)
		if err != nil || v != acked+1 {
			t.Fatalf("child said %q after ack %d", line, acked)
		}
		acked = v
		if acked == killAfter && !killed {
			must(t, cmd.Process.Kill()) // SIGKILL
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d acks (%v), before being killed", acked, err)
	}
	if ctx.Err() != nil {
		t.Fatal("child timed out")
	}
	t.Logf("killed after %d acks (%d acknowledged in all)", killAfter, acked)

	s, err := Open(path)
	must(t, err)
	defer s.Close()
	var check string
	must(t, s.db.QueryRowContext(bg, sqlIntegrityCheck).Scan(&check))
	if check != "ok" {
		t.Fatalf("integrity check: %s", check)
	}
	c, err := s.Config(bg)
	must(t, err)
	rels := map[string]bool{}
	for _, r := range c.Model.Relations {
		rels[r.Name] = true
	}
	events, err := s.Events(bg, EventFilter{Limit: MaxEventLimit})
	must(t, err)
	msgs := map[string]bool{}
	for _, e := range events {
		msgs[e.Message] = true
	}
	for n := 1; n <= acked; n++ {
		if !rels[fmt.Sprintf("r-%d", n)] || !msgs[strconv.Itoa(n)] {
			t.Fatalf("acknowledged write %d lost (relation %v, event %v)", n, rels[fmt.Sprintf("r-%d", n)], msgs[strconv.Itoa(n)])
		}
	}
	// At most the one write in flight at the kill went further.
	if c.Revision < int64(acked) || c.Revision > int64(acked)+1 || int64(len(c.Model.Relations)) != c.Revision {
		t.Fatalf("revision %d with %d relations after %d acks", c.Revision, len(c.Model.Relations), acked)
	}
	// The store is writable again.
	if _, err := s.Update(bg, func(*Config) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
