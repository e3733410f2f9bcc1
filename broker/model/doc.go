// Package model holds the domain steps on the broker's stored
// configuration (store.Config) that every way of changing it shares: the
// management API (broker/api), the web console and the broker.yaml of the
// product (broker/app) all call them, so that a change means the same
// whichever way it comes.
//
//   - Compile turns a stored configuration into what the broker runs: the
//     policy snapshot and each device's networks, aliased ones behind 1:1
//     NAT.
//   - Participants and CheckNewParticipants bracket a change: they keep
//     the participants' creation times (which order them by seniority when
//     a license lapses) and refuse a change that adds participants beyond
//     the licensed capacity (ErrCapacity).
//
// The package is apart from package broker so that the broker's core (the
// switch and the sessions) does not depend on the store and its database.
package model
