package browsertest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// processesOf returns the PIDs of the processes whose command line names a
// path under root, the Browser's private directory: the browser, every
// helper it forks (zygotes, renderers, GPU, network: they carry
// --user-data-dir) and its crash handlers (their --database is under HOME).
// Forked helpers rewrite their command line with spaces between the
// arguments, so it is searched as a whole rather than split.
func processesOf(root string) []int {
	want := []byte(filepath.Clean(root) + "/")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue // gone meanwhile
		}
		if bytes.Contains(cmdline, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGone waits until no process of root is left, for up to limit
// (helpers exit on their own once the browser is gone, but not at once).
// It kills those still there after limit and returns their PIDs.
func waitGone(root string, limit time.Duration) []int {
	deadline := time.Now().Add(limit)
	for {
		pids := processesOf(root)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				// Only processes of this browser: their command line
				// names its private directory.
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return pids
		}
		time.Sleep(20 * time.Millisecond)
	}
}
