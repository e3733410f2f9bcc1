// Package policy is the access model of a remote-access broker and its
// compiled, lock-free evaluation.
//
// An administrator works with a Model: users with roles (a role is a set
// of Rights; a user holds the rights of all its roles), devices (plant
// gateways with networks behind them), participant groups (users and
// devices are participants; groups may contain subgroups), and
// communication relations between groups: who may open flows to whom
// (OneWay or Both), with which services (protocol, destination ports, ICMP
// types), in which validity window, enabled or not. The role admin (all
// rights), the role vpn_user (may only connect) and the group
// vpn_user_group are predefined.
//
// Compile validates a Model (names, unknown references, duplicate names,
// group cycles, empty port ranges, windows that end before they begin) and
// returns an immutable Snapshot. A Snapshot answers management questions
// (Can, ExplainCan) and data-plane questions (Allowed) without locks or
// allocation; Explain turns any decision into a sentence that names the
// relation behind it, or its absence, for the event log.
//
// Names of users, devices, groups, roles and relations follow one rule,
// ValidName: 1 to 64 (MaxNameLen) ASCII letters, digits, ".", "-", "_"
// and "@", beginning with a letter or a digit, not ending with ".", and
// without "..", e.g. "plant-1", "plant1-gw", "vpn_user_group" or
// "jane.doe@example.com". The same names name participants' certificates
// and the files of their profiles, so the rule keeps out what a path, a
// configuration file, a command line or a spreadsheet would read as
// something else.
//
// Everything not allowed is denied. A disabled participant or relation
// allows nothing. Members of one group may talk to each other only if the
// group says so (Group.Intra).
//
// A FlowFilter adds the state a packet filter needs: flows opened in an
// allowed direction are remembered in a bounded table, so that their
// replies pass (TCP and UDP by participants, addresses and ports; ICMP echo
// by identifier), and are forgotten after an idle timeout; ICMP errors that
// quote a packet of a remembered flow pass too (Flow.Quote), so that
// path-MTU discovery works over one-way relations. The broker keeps one
// FlowFilter and swaps in new snapshots as the model changes.
package policy
