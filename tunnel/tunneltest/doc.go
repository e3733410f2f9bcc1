// Package tunneltest provides in-memory tunnel.Device pipes and a recording
// tunnel.Handler for tests of transports and of the broker.
package tunneltest
