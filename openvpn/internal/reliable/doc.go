// Package reliable is OpenVPN's control-channel reliability layer: message
// ids, acknowledgements, retransmission with exponential backoff, a send
// window of 6 and a receive window of 12, and in-order delivery.
//
// One Layer serves one key state (one key id) of a session, both
// directions. It is pure logic with explicit time: no goroutines, timers,
// I/O or locks; the caller serializes calls. Per received control packet
// the session loop calls OnAcks and, if the packet carries a message id,
// Receive, then drains Read; it transmits what Due returns, piggybacking
// TakeAcks(MaxAcksControl) or sending a P_ACK_V1 with TakeAcks(MaxAcksAck)
// when HasPendingAcks, and sleeps until NextDeadline.
//
// To keep the hot path free of allocations the Layer owns the slices it
// returns: Due's slice until the next Due (each Payload until its message
// is acknowledged), TakeAcks' slice until the next TakeAcks, and a Read
// payload until the next Receive.
package reliable
