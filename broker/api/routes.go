package api

import (
	"net/http"

	"github.com/remotegate/remotegate/policy"
)

// access says who may call an endpoint.
type access int

const (
	public      access = iota // no authentication (login, the OpenAPI document)
	anyAccount                // any authenticated account, whatever its rights
	bootstrap                 // only the bootstrap administrator's session
	rightNeeded               // an account holding route.right
)

// route is one endpoint of the management API. The table below is the
// single source of truth: the server registers exactly these, and a test
// checks that openapi.json documents exactly these, with the same rights
// (the x-remotegate-right extension), and that an account without the right
// gets 403 from each.
type route struct {
	op           string // the operationId in openapi.json
	method, path string
	access       access
	right        policy.Rights
	handle       func(*Server, http.ResponseWriter, *http.Request, *caller)
}

// streamsBody reports whether the route's handler reads its request body
// as a stream and bounds it itself, so that the 16 MiB cap of the other
// routes does not apply: a restore reads a backup archive of up to
// store.MaxBackupSize into a temporary file, never into memory.
func (rt route) streamsBody() bool { return rt.op == "restore" }

func routes() []route {
	return []route{
		{"openAPI", "GET", "/api/v1/openapi.json", public, 0, (*Server).openAPI},
		{"login", "POST", "/api/v1/login", public, 0, (*Server).login},
		{"loginCertificate", "POST", "/api/v1/login/certificate", public, 0, (*Server).loginCertificate},
		{"logout", "POST", "/api/v1/logout", anyAccount, 0, (*Server).logout},
		{"changePassword", "PUT", "/api/v1/password", anyAccount, 0, (*Server).changePassword},
		{"finishBootstrap", "POST", "/api/v1/bootstrap", bootstrap, 0, (*Server).finishBootstrap},
		{"getAccount", "GET", "/api/v1/account", anyAccount, 0, (*Server).getAccount},

		{"listUsers", "GET", "/api/v1/users", rightNeeded, policy.RightManageUsers, (*Server).listUsers},
		{"createUser", "POST", "/api/v1/users", rightNeeded, policy.RightManageUsers, (*Server).createUser},
		{"getUser", "GET", "/api/v1/users/{name}", rightNeeded, policy.RightManageUsers, (*Server).getUser},
		{"putUser", "PUT", "/api/v1/users/{name}", rightNeeded, policy.RightManageUsers, (*Server).putUser},
		{"deleteUser", "DELETE", "/api/v1/users/{name}", rightNeeded, policy.RightManageUsers, (*Server).deleteUser},
		{"setPassword", "PUT", "/api/v1/users/{name}/password", rightNeeded, policy.RightManageUsers, (*Server).setPassword},

		{"listRoles", "GET", "/api/v1/roles", rightNeeded, policy.RightManageUsers, roles.listH},
		{"createRole", "POST", "/api/v1/roles", rightNeeded, policy.RightManageUsers, roles.createH},
		{"getRole", "GET", "/api/v1/roles/{name}", rightNeeded, policy.RightManageUsers, roles.getH},
		{"putRole", "PUT", "/api/v1/roles/{name}", rightNeeded, policy.RightManageUsers, roles.putH},
		{"deleteRole", "DELETE", "/api/v1/roles/{name}", rightNeeded, policy.RightManageUsers, roles.deleteH},

		{"listDevices", "GET", "/api/v1/devices", rightNeeded, policy.RightManageDevices, (*Server).listDevices},
		{"createDevice", "POST", "/api/v1/devices", rightNeeded, policy.RightManageDevices, (*Server).createDevice},
		{"getDevice", "GET", "/api/v1/devices/{name}", rightNeeded, policy.RightManageDevices, (*Server).getDevice},
		{"putDevice", "PUT", "/api/v1/devices/{name}", rightNeeded, policy.RightManageDevices, (*Server).putDevice},
		{"deleteDevice", "DELETE", "/api/v1/devices/{name}", rightNeeded, policy.RightManageDevices, (*Server).deleteDevice},
		{"getNetworks", "GET", "/api/v1/devices/{name}/networks", rightNeeded, policy.RightManageAddressSpaces, (*Server).getNetworks},
		{"putNetworks", "PUT", "/api/v1/devices/{name}/networks", rightNeeded, policy.RightManageAddressSpaces, (*Server).putNetworks},

		{"listGroups", "GET", "/api/v1/groups", rightNeeded, policy.RightManageGroups, groups.listH},
		{"createGroup", "POST", "/api/v1/groups", rightNeeded, policy.RightManageGroups, groups.createH},
		{"getGroup", "GET", "/api/v1/groups/{name}", rightNeeded, policy.RightManageGroups, groups.getH},
		{"putGroup", "PUT", "/api/v1/groups/{name}", rightNeeded, policy.RightManageGroups, groups.putH},
		{"deleteGroup", "DELETE", "/api/v1/groups/{name}", rightNeeded, policy.RightManageGroups, groups.deleteH},

		{"listRelations", "GET", "/api/v1/relations", rightNeeded, policy.RightManageGroups, relations.listH},
		{"createRelation", "POST", "/api/v1/relations", rightNeeded, policy.RightManageGroups, relations.createH},
		{"getRelation", "GET", "/api/v1/relations/{name}", rightNeeded, policy.RightManageGroups, relations.getH},
		{"putRelation", "PUT", "/api/v1/relations/{name}", rightNeeded, policy.RightManageGroups, relations.putH},
		{"deleteRelation", "DELETE", "/api/v1/relations/{name}", rightNeeded, policy.RightManageGroups, relations.deleteH},

		{"listCertificates", "GET", "/api/v1/certificates", rightNeeded, policy.RightManageCertificates, (*Server).listCertificates},
		{"issueCertificate", "POST", "/api/v1/certificates", rightNeeded, policy.RightManageCertificates, (*Server).issueCertificate},
		{"getCertificate", "GET", "/api/v1/certificates/{serial}", rightNeeded, policy.RightManageCertificates, (*Server).getCertificate},
		{"renewCertificate", "POST", "/api/v1/certificates/{serial}/renew", rightNeeded, policy.RightManageCertificates, (*Server).renewCertificate},
		{"revokeCertificate", "POST", "/api/v1/certificates/{serial}/revoke", rightNeeded, policy.RightManageCertificates, (*Server).revokeCertificate},
		{"exportProfile", "POST", "/api/v1/participants/{name}/profile", rightNeeded, policy.RightManageCertificates, (*Server).exportProfile},
		{"createEnrollment", "POST", "/api/v1/devices/{name}/enrollment", rightNeeded, policy.RightManageCertificates, (*Server).createEnrollment},
		{"ownProfile", "POST", "/api/v1/profile", anyAccount, 0, (*Server).ownProfile},

		{"getIPsecProposals", "GET", "/api/v1/ipsec/proposals", rightNeeded, policy.RightSystemSettings, (*Server).getIPsecProposals},
		{"putIPsecProposals", "PUT", "/api/v1/ipsec/proposals", rightNeeded, policy.RightSystemSettings, (*Server).putIPsecProposals},

		{"listParticipants", "GET", "/api/v1/participants", rightNeeded, policy.RightViewEvents, (*Server).listParticipants},
		{"listSessions", "GET", "/api/v1/sessions", rightNeeded, policy.RightViewEvents, (*Server).listSessions},
		{"terminateSession", "DELETE", "/api/v1/sessions/{participant}", rightNeeded, policy.RightSystemSettings, (*Server).terminateSession},
		{"listEvents", "GET", "/api/v1/events", rightNeeded, policy.RightViewEvents, (*Server).listEvents},

		{"listLicenses", "GET", "/api/v1/licenses", rightNeeded, policy.RightManageLicenses, (*Server).listLicenses},
		{"addLicense", "POST", "/api/v1/licenses", rightNeeded, policy.RightManageLicenses, (*Server).addLicense},
		{"releaseLicense", "POST", "/api/v1/licenses/{number}/release", rightNeeded, policy.RightManageLicenses, (*Server).releaseLicense},

		{"backup", "POST", "/api/v1/backup", rightNeeded, policy.RightBackup, (*Server).backup},
		{"restore", "POST", "/api/v1/restore", rightNeeded, policy.RightBackup, (*Server).restore},
	}
}
