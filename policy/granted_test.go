package policy

import "testing"

// Granted is what a user's roles give it, also while it is disabled (what
// a change to the account touches); Rights is what it may do now.
func TestGrantedAndRoleRights(t *testing.T) {
	s := compileStory(t)
	for _, c := range []struct {
		user            string
		granted, rights Rights
	}{
		{"alice", AllRights, AllRights},
		{"carol", RightManageDevices | RightViewEvents | RightConnectVPN, RightManageDevices | RightViewEvents | RightConnectVPN},
		{"dave", AllRights, 0}, // a disabled administrator
		{"plant7-gw", 0, 0},
		{"mallory", 0, 0},
	} {
		if got := s.Granted(c.user); got != c.granted {
			t.Errorf("Granted(%s) = %s, want %s", c.user, got, c.granted)
		}
		if got := s.Rights(c.user); got != c.rights {
			t.Errorf("Rights(%s) = %s, want %s", c.user, got, c.rights)
		}
	}
	for _, c := range []struct {
		role   string
		rights Rights
		ok     bool
	}{
		{RoleAdmin, AllRights, true},
		{RoleVPNUser, RightConnectVPN, true},
		{"operator", RightManageDevices | RightViewEvents, true},
		{"nonesuch", 0, false},
	} {
		if got, ok := s.RoleRights(c.role); got != c.rights || ok != c.ok {
			t.Errorf("RoleRights(%s) = %s, %v; want %s, %v", c.role, got, ok, c.rights, c.ok)
		}
	}
}
