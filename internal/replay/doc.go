// Package replay implements the sliding-window replay filter (RFC 6479 style)
// used by the data channels and by control-channel wrappers.
//
// A Window accepts each packet id once. Ids above the highest seen move the
// window forward; ids within Size below the highest are accepted once; older
// ids and id 0 are rejected. The zero Window is ready to use. A Window is not
// safe for concurrent use.
package replay
