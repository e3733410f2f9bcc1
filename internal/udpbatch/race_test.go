//go:build race

package udpbatch

// raceEnabled: the race detector makes x/net allocate per message.
const raceEnabled = true
