//go:build race

package broker

// raceEnabled: under the race detector sync.Pool drops items on purpose,
// so the scratch pool allocates now and then.
const raceEnabled = true
