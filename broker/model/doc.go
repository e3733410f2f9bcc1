// Package model holds the domain steps on the broker's stored
// configuration (store.Config) that every way of changing it shares: the
// management API (broker/api) and through it the web console, a vendor's
// own front end, and the broker.yaml of the product (broker/app) all call
// them, so that a change means the same whichever way it comes.
//
// A Manager, built from a Config (store, broker, CA, licenses, clock),
// takes the steps without HTTP:
//
//   - Load applies the stored configuration to the broker; Change is the
//     pipeline every change of the configuration goes through: one store
//     transaction, the licensed capacity, the compile, the grant rules
//     (no right grants more than itself; the last administrator stays),
//     the broker's acceptance of the networks, then the broker runs with
//     it and the event log records who changed what. Snapshot is the
//     access model in force.
//   - The collections: users (with passwords), roles, devices with their
//     networks (LANs and 1:1 NAT aliases), participant groups and
//     communication relations: list, get, create, put, delete.
//   - Certificates (issue, renew, revoke: revocation ends the holder's
//     tunnel and API sessions; the key and certificate of an exported
//     profile, whose rendering is the caller's) and enrollment tokens.
//   - Sessions (ParticipantStates, Terminate), the event log (Events,
//     Record) and its retention (Maintain), the bootstrap of a fresh
//     installation (Bootstrap, FinishBootstrap).
//   - Licenses (AddLicense, ReleaseLicense, CheckLicenses) and
//     backup/restore.
//
// A step's error wraps one of ErrNotFound, ErrConflict (ErrLastHolder,
// ErrBootstrapDone and ErrUnlicensed are ones), ErrInvalid, ErrForbidden
// or ErrCapacity, so that a front end maps it to its own terms in one
// place (the API: 404, 409, 400, 403, 409). A Manager checks what no
// right allows; whether an actor may take a step at all (the right each
// API route needs) is the front end's check.
//
// The functions Compile, Participants and CheckNewParticipants are the
// steps' parts that a declarative configuration (broker.yaml) uses on its
// own.
//
// The package is apart from package broker so that the broker's core (the
// switch and the sessions) does not depend on the store and its database.
package model
