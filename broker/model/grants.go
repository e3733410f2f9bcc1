package model

import (
	"fmt"
	"slices"

	"github.com/remotegate/remotegate/pki"
	"github.com/remotegate/remotegate/policy"
)

// No right grants more than itself. A right to manage users, roles or
// certificates could otherwise be turned into every right: give oneself
// the admin role, add backup to one's own role, set an administrator's
// password, or issue a certificate in an administrator's name and log in
// with it. So an actor acts only on what lies within its own rights:
//
//   - a role it creates, changes or deletes carries, before and after,
//     only rights the actor holds;
//   - a user it creates, changes (roles, groups, disabled) or deletes, and
//     every user whose rights a change alters, holds, before and after,
//     only rights the actor holds; the rights of a disabled user count
//     (policy.Snapshot.Granted), as enabling it would give them back;
//   - the same holds for setting a user's password, and for issuing,
//     renewing, exporting (in a profile or PKCS#12 file) or revoking a
//     certificate in a user's name: such a certificate logs in as the user.
//     Devices hold no rights; a client certificate must name a participant,
//     so that none waits for a more powerful user to be created under its
//     name.
//
// An actor that lacks some right of the target gets ErrForbidden naming
// the rights it lacks. So a user manager that is not an administrator can
// neither raise anyone to more than itself, nor disable, delete, demote or
// take over anyone above itself. The predefined roles cannot be changed at
// all (policy.Compile refuses them).
//
// And the installation keeps an administrator: a change that would leave
// no enabled user with the admin role, or none with manage-users, where
// there was one, is refused with ErrLastHolder, in the transaction of the
// change, so that two concurrent requests cannot each remove one of the
// last two.
//
// This file is the one place these rules are written; the API and the
// console reach them through the Manager's steps.

// heldBy returns the rights a holds in snap. The bootstrap administrator
// is not a user of the model; its one step names an administrator, so it
// holds every right.
func heldBy(a actor, snap *policy.Snapshot) policy.Rights {
	switch {
	case a.all:
		return policy.AllRights
	case snap == nil || a.name == "":
		return 0
	}
	return snap.Rights(a.name)
}

func notWithin(a actor, verb, kind, name string, missing policy.Rights) error {
	return fmt.Errorf("%w: %q may not %s %s %q: it does not hold %s", ErrForbidden, a.name, verb, kind, name, missing)
}

// checkGrants refuses (ErrForbidden) a change from before to after, made
// by a, that touches a role or a user with a right a does not hold in
// before. beforeModel and afterModel are the models the snapshots were
// compiled from.
func checkGrants(a actor, before, after *policy.Snapshot, beforeModel, afterModel *policy.Model) error {
	held := heldBy(a, before)
	need := func(kind, name string, rights policy.Rights) error {
		if missing := rights &^ held; missing != 0 {
			return notWithin(a, "change", kind, name, missing)
		}
		return nil
	}

	oldRoles := make(map[string]policy.Rights, len(beforeModel.Roles))
	for _, r := range beforeModel.Roles {
		oldRoles[r.Name] = r.Rights
	}
	for _, r := range afterModel.Roles {
		old, existed := oldRoles[r.Name]
		delete(oldRoles, r.Name)
		if !existed || old != r.Rights {
			if err := need("role", r.Name, old|r.Rights); err != nil {
				return err
			}
		}
	}
	for _, r := range beforeModel.Roles { // the deleted ones, in order
		if rights, deleted := oldRoles[r.Name]; deleted {
			if err := need("role", r.Name, rights); err != nil {
				return err
			}
		}
	}

	oldUsers := make(map[string]*policy.User, len(beforeModel.Users))
	for i := range beforeModel.Users {
		oldUsers[beforeModel.Users[i].Name] = &beforeModel.Users[i]
	}
	for i := range afterModel.Users {
		u := &afterModel.Users[i]
		old := oldUsers[u.Name]
		delete(oldUsers, u.Name)
		was, is := before.Granted(u.Name), after.Granted(u.Name)
		if old == nil || !sameUser(old, u) || was != is {
			if err := need("user", u.Name, was|is); err != nil {
				return err
			}
		}
	}
	for _, u := range beforeModel.Users {
		if oldUsers[u.Name] != nil {
			if err := need("user", u.Name, before.Granted(u.Name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameUser reports whether a change left the user's entry as it was.
func sameUser(a, b *policy.User) bool {
	return a.Name == b.Name && a.Disabled == b.Disabled && a.Created.Equal(b.Created) &&
		slices.Equal(a.Roles, b.Roles) && slices.Equal(a.Groups, b.Groups)
}

// checkLastHolders refuses (ErrLastHolder) a change that leaves no enabled
// user holding the admin role, or none holding manage-users, where before
// there was one.
func checkLastHolders(before, after *policy.Snapshot, beforeModel, afterModel *policy.Model) error {
	for _, k := range []struct {
		what  string
		holds func(*policy.Snapshot, *policy.User) bool
	}{
		{"enabled user with the role " + policy.RoleAdmin, func(_ *policy.Snapshot, u *policy.User) bool {
			return !u.Disabled && slices.Contains(u.Roles, policy.RoleAdmin)
		}},
		{"enabled user with the right " + policy.RightManageUsers.String(), func(s *policy.Snapshot, u *policy.User) bool {
			return s.Can(u.Name, policy.RightManageUsers)
		}},
	} {
		someone := func(s *policy.Snapshot, m *policy.Model) bool {
			for i := range m.Users {
				if k.holds(s, &m.Users[i]) {
					return true
				}
			}
			return false
		}
		if someone(before, beforeModel) && !someone(after, afterModel) {
			return fmt.Errorf("%w: no %s would remain", ErrLastHolder, k.what)
		}
	}
	return nil
}

// mayActFor refuses (ErrForbidden) a an action (verb) on the user called
// name, judged on snap, when the user holds a right a does not.
func mayActFor(a actor, snap *policy.Snapshot, verb, name string) error {
	if missing := snap.Granted(name) &^ heldBy(a, snap); missing != 0 {
		return notWithin(a, verb, "user", name, missing)
	}
	return nil
}

// mayCertify refuses (ErrForbidden) to a a certificate in the name cn,
// judged on snap: one that names a user only an actor holding every right
// of that user may get, renew, export or revoke. Whatever its profile: a
// server certificate does not log in (the verifier asks for client
// authentication), but nothing is gained by telling them apart.
func mayCertify(a actor, snap *policy.Snapshot, verb, cn string) error {
	return mayActFor(a, snap, verb+" a certificate of", cn)
}

// checkSubject refuses (ErrInvalid) a new client certificate that names no
// participant of snap: it would wait for whoever is created under that
// name later, an administrator perhaps, and log in as it.
func checkSubject(snap *policy.Snapshot, cn string, profile pki.Profile) error {
	if _, ok := snap.Lookup(cn); !ok && profile != pki.ProfileServer {
		return fmt.Errorf("%w: the common name %q names no user or device; create the participant first", ErrInvalid, cn)
	}
	return nil
}
