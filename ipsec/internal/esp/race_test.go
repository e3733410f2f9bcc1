//go:build race

package esp

// raceEnabled: under the race detector sync.Pool drops entries at random
// (the CBC sealers are then rebuilt) and instrumentation may allocate, so
// the zero-allocation tests are skipped.
const raceEnabled = true
