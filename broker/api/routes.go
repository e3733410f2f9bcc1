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
	method, path string
	access       access
	right        policy.Rights
	handle       func(*Server, http.ResponseWriter, *http.Request, *caller)
}

func routes() []route {
	return []route{
		{"GET", "/api/v1/openapi.json", public, 0, (*Server).openAPI},
		{"POST", "/api/v1/login", public, 0, (*Server).login},
		{"POST", "/api/v1/login/certificate", public, 0, (*Server).loginCertificate},
		{"POST", "/api/v1/logout", anyAccount, 0, (*Server).logout},
		{"PUT", "/api/v1/password", anyAccount, 0, (*Server).changePassword},
		{"POST", "/api/v1/bootstrap", bootstrap, 0, (*Server).finishBootstrap},

		{"GET", "/api/v1/users", rightNeeded, policy.RightManageUsers, (*Server).listUsers},
		{"POST", "/api/v1/users", rightNeeded, policy.RightManageUsers, (*Server).createUser},
		{"GET", "/api/v1/users/{name}", rightNeeded, policy.RightManageUsers, (*Server).getUser},
		{"PUT", "/api/v1/users/{name}", rightNeeded, policy.RightManageUsers, (*Server).putUser},
		{"DELETE", "/api/v1/users/{name}", rightNeeded, policy.RightManageUsers, (*Server).deleteUser},
		{"PUT", "/api/v1/users/{name}/password", rightNeeded, policy.RightManageUsers, (*Server).setPassword},

		{"GET", "/api/v1/roles", rightNeeded, policy.RightManageUsers, (*Server).listRoles},
		{"POST", "/api/v1/roles", rightNeeded, policy.RightManageUsers, (*Server).createRole},
		{"GET", "/api/v1/roles/{name}", rightNeeded, policy.RightManageUsers, (*Server).getRole},
		{"PUT", "/api/v1/roles/{name}", rightNeeded, policy.RightManageUsers, (*Server).putRole},
		{"DELETE", "/api/v1/roles/{name}", rightNeeded, policy.RightManageUsers, (*Server).deleteRole},

		{"GET", "/api/v1/devices", rightNeeded, policy.RightManageDevices, (*Server).listDevices},
		{"POST", "/api/v1/devices", rightNeeded, policy.RightManageDevices, (*Server).createDevice},
		{"GET", "/api/v1/devices/{name}", rightNeeded, policy.RightManageDevices, (*Server).getDevice},
		{"PUT", "/api/v1/devices/{name}", rightNeeded, policy.RightManageDevices, (*Server).putDevice},
		{"DELETE", "/api/v1/devices/{name}", rightNeeded, policy.RightManageDevices, (*Server).deleteDevice},
		{"GET", "/api/v1/devices/{name}/networks", rightNeeded, policy.RightManageAddressSpaces, (*Server).getNetworks},
		{"PUT", "/api/v1/devices/{name}/networks", rightNeeded, policy.RightManageAddressSpaces, (*Server).putNetworks},

		{"GET", "/api/v1/groups", rightNeeded, policy.RightManageGroups, (*Server).listGroups},
		{"POST", "/api/v1/groups", rightNeeded, policy.RightManageGroups, (*Server).createGroup},
		{"GET", "/api/v1/groups/{name}", rightNeeded, policy.RightManageGroups, (*Server).getGroup},
		{"PUT", "/api/v1/groups/{name}", rightNeeded, policy.RightManageGroups, (*Server).putGroup},
		{"DELETE", "/api/v1/groups/{name}", rightNeeded, policy.RightManageGroups, (*Server).deleteGroup},

		{"GET", "/api/v1/relations", rightNeeded, policy.RightManageGroups, (*Server).listRelations},
		{"POST", "/api/v1/relations", rightNeeded, policy.RightManageGroups, (*Server).createRelation},
		{"GET", "/api/v1/relations/{name}", rightNeeded, policy.RightManageGroups, (*Server).getRelation},
		{"PUT", "/api/v1/relations/{name}", rightNeeded, policy.RightManageGroups, (*Server).putRelation},
		{"DELETE", "/api/v1/relations/{name}", rightNeeded, policy.RightManageGroups, (*Server).deleteRelation},

		{"GET", "/api/v1/certificates", rightNeeded, policy.RightManageCertificates, (*Server).listCertificates},
		{"POST", "/api/v1/certificates", rightNeeded, policy.RightManageCertificates, (*Server).issueCertificate},
		{"GET", "/api/v1/certificates/{serial}", rightNeeded, policy.RightManageCertificates, (*Server).getCertificate},
		{"POST", "/api/v1/certificates/{serial}/renew", rightNeeded, policy.RightManageCertificates, (*Server).renewCertificate},
		{"POST", "/api/v1/certificates/{serial}/revoke", rightNeeded, policy.RightManageCertificates, (*Server).revokeCertificate},
		{"POST", "/api/v1/participants/{name}/profile", rightNeeded, policy.RightManageCertificates, (*Server).exportProfile},

		{"GET", "/api/v1/participants", rightNeeded, policy.RightViewEvents, (*Server).listParticipants},
		{"GET", "/api/v1/sessions", rightNeeded, policy.RightViewEvents, (*Server).listSessions},
		{"DELETE", "/api/v1/sessions/{participant}", rightNeeded, policy.RightSystemSettings, (*Server).terminateSession},
		{"GET", "/api/v1/events", rightNeeded, policy.RightViewEvents, (*Server).listEvents},

		{"POST", "/api/v1/backup", rightNeeded, policy.RightBackup, (*Server).backup},
		{"POST", "/api/v1/restore", rightNeeded, policy.RightBackup, (*Server).restore},
	}
}
