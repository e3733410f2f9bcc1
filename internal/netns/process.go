package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 3 * time.Second

// logTail bounds how much of a log goes into a failure message.
const logTail = 8 << 10

// Process is a long-running program started in a namespace by Start.
type Process struct {
	Cmd     *exec.Cmd
	LogPath string

	done    chan struct{} // closed when Wait returned
	waitErr error         // valid after done is closed
}

// Start starts a long-running program in the namespace. Its stdout and
// stderr go to a log file in t.TempDir(). At cleanup it is stopped (SIGTERM,
// then SIGKILL after 3 s) and, if the test failed, its log is printed with
// t.Log.
func (n *NS) Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), logName(name))
	if err != nil {
		t.Fatal(err)
	}
	// No context: the process must outlive this call; cleanup stops it.
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group so that stopping it also reaches any helpers it
	// forked. Pdeathsig kills it if the test binary dies without running
	// cleanups (a -timeout panic, ^C), which would otherwise leave e.g. an
	// openvpn holding the namespace alive; `ip netns exec` execs the program
	// directly, so the setting reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("netns: start %s in %s: %v", name, n.Name, err)
	}
	p := &Process{Cmd: cmd, LogPath: f.Name(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.Stop() // a non-zero exit after SIGTERM is expected
		if t.Failed() {
			t.Logf("log of %s in %s (%s):\n%s", name, n.Name, p.LogPath, tail(p.Log(), logTail))
		}
	})
	return p
}

func logName(program string) string {
	base := filepath.Base(program)
	if base == "" || base == "." || base == "/" {
		base = "process"
	}
	return base + "-*.log"
}

// Log returns everything the process has written so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("<reading %s: %v>", p.LogPath, err)
	}
	return string(b)
}

// Exited reports whether the process has terminated.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitLog waits until the log matches the regular expression. It fails the
// test, with the tail of the log, when the timeout passes or the process
// exits first.
func (p *Process) WaitLog(t testing.TB, re string, timeout time.Duration) {
	t.Helper()
	rx, err := regexp.Compile(re)
	if err != nil {
		t.Fatalf("netns: WaitLog pattern: %v", err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if rx.MatchString(p.Log()) {
			return
		}
		select {
		case <-p.done:
			// One last look: the line may have been written just before exit.
			if log := p.Log(); !rx.MatchString(log) {
				t.Fatalf("netns: %s exited (%v) before its log matched %q; log tail:\n%s", p.name(), p.waitErr, re, tail(log, logTail))
			}
			return
		case <-deadline.C:
			t.Fatalf("netns: %s: log did not match %q within %v; log tail:\n%s", p.name(), re, timeout, tail(p.Log(), logTail))
			return
		case <-tick.C:
		}
	}
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ), 100 on every
// Linux architecture the tests run on.
const userHZ = 100

// CPUTime is the processor time, user and system, that the process has used
// so far, all its threads included (/proc/PID/stat).
func (p *Process) CPUTime() (time.Duration, error) {
	if p.Cmd.Process == nil {
		return 0, fmt.Errorf("netns: %s: not started", p.name())
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("netns: CPU time of %s: %w", p.name(), err)
	}
	return parseCPUTime(string(b))
}

// parseCPUTime reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// contain spaces, so fields are counted from the last ')'.
func parseCPUTime(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("netns: malformed /proc stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("netns: short /proc stat line %q", stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("netns: /proc stat field %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// RSS is the process's resident set size now (VmRSS in /proc/PID/status).
func (p *Process) RSS() (int64, error) {
	if p.Cmd.Process == nil {
		return 0, fmt.Errorf("netns: %s: not started", p.name())
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("netns: RSS of %s: %w", p.name(), err)
	}
	return parseRSS(string(b))
}

// parseRSS reads the "VmRSS:   1234 kB" line of a /proc/PID/status file.
func parseRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("netns: VmRSS %q: %w", rest, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("netns: no VmRSS line in /proc status %q", tail(status, 512))
}

// Stop sends SIGTERM to the process group, waits up to 3 s, then sends
// SIGKILL and waits. It returns the process's exit error (nil if it exited
// with status 0). Calling it again returns the same result.
func (p *Process) Stop() error {
	if !p.Exited() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	}
	return p.waitErr
}

func (p *Process) signal(sig syscall.Signal) {
	if p.Cmd.Process == nil {
		return
	}
	// Negative pid: the whole group (see Setpgid in Start).
	if err := syscall.Kill(-p.Cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.Cmd.Process.Signal(sig)
	}
}

func (p *Process) name() string {
	return strings.Join(p.Cmd.Args[3:], " ") // skip "ip netns exec <ns>"
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Kill sends SIGKILL to the process group at once and waits for the exit:
// a crash, for tests of what survives one.
func (p *Process) Kill() {
	if !p.Exited() {
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}
