// Package reliable is OpenVPN's control-channel reliability layer: message
// ids, acknowledgements, retransmission with exponential backoff, a send
// window of 6 and a receive window of 12, and in-order delivery.
//
// One Layer serves one key state (one key id) of a session, both
// directions. It is pure logic with explicit time: no goroutines, timers,
// I/O or locks; the caller serializes calls and sleeps until NextDeadline.
package reliable
