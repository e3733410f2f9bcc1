package message

import "fmt"

// ExchangeType is the header's Exchange Type (RFC 7296 §3.1).
type ExchangeType uint8

// Exchange types.
const (
	IKESAInit     ExchangeType = 34
	IKEAuth       ExchangeType = 35
	CreateChildSA ExchangeType = 36
	Informational ExchangeType = 37
)

func (e ExchangeType) String() string {
	switch e {
	case IKESAInit:
		return "IKE_SA_INIT"
	case IKEAuth:
		return "IKE_AUTH"
	case CreateChildSA:
		return "CREATE_CHILD_SA"
	case Informational:
		return "INFORMATIONAL"
	}
	return fmt.Sprintf("EXCHANGE(%d)", uint8(e))
}

// Header flags (RFC 7296 §3.1). FlagInitiator is set in every message sent by
// the original initiator of the IKE SA, FlagResponse in every response.
// FlagVersion is never set by IKEv2 implementations.
const (
	FlagInitiator uint8 = 0x08
	FlagVersion   uint8 = 0x10
	FlagResponse  uint8 = 0x20
)

// Version2 is the header's version octet for IKEv2.0 (major 2, minor 0).
const Version2 uint8 = 0x20

// HeaderLen is the size of the fixed IKE header.
const HeaderLen = 28

// NonESPMarkerLen is the size of the four zero octets that precede an IKE
// message on UDP port 4500 (RFC 3948 §2.2). They are not part of the
// message: not counted in Length, not covered by AUTH or the SK checksum.
const NonESPMarkerLen = 4

// PayloadType is a Next Payload value (RFC 7296 §3.2, RFC 7383 §2.5).
type PayloadType uint8

// Payload types. NoNext ends a chain.
const (
	NoNext          PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCERT     PayloadType = 37
	PayloadCERTREQ  PayloadType = 38
	PayloadAUTH     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48
	PayloadSKF      PayloadType = 53
)

var payloadNames = map[PayloadType]string{
	NoNext: "NoNext", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr",
	PayloadCERT: "CERT", PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "Nonce",
	PayloadNotify: "Notify", PayloadDelete: "Delete", PayloadVendorID: "VendorID",
	PayloadTSi: "TSi", PayloadTSr: "TSr", PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP",
	PayloadSKF: "SKF",
}

func (t PayloadType) String() string {
	if s, ok := payloadNames[t]; ok {
		return s
	}
	return fmt.Sprintf("PAYLOAD(%d)", uint8(t))
}

// known reports whether the package has a concrete type for t; other types
// are parsed as *Unknown (or rejected when critical).
func (t PayloadType) known() bool {
	_, ok := payloadNames[t]
	return ok && t != NoNext
}

// Protocol is a Protocol ID of a proposal, notify or delete payload.
type Protocol uint8

// Protocol IDs. ProtoNone is what notifies that concern no SA carry.
const (
	ProtoNone Protocol = 0
	ProtoIKE  Protocol = 1
	ProtoAH   Protocol = 2
	ProtoESP  Protocol = 3
)

func (p Protocol) String() string {
	switch p {
	case ProtoNone:
		return "none"
	case ProtoIKE:
		return "IKE"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	}
	return fmt.Sprintf("PROTO(%d)", uint8(p))
}

// TransformType is the Transform Type of a transform substructure.
type TransformType uint8

// Transform types (RFC 7296 §3.3.2).
const (
	TransformEncr  TransformType = 1
	TransformPRF   TransformType = 2
	TransformInteg TransformType = 3
	TransformDH    TransformType = 4
	TransformESN   TransformType = 5
)

func (t TransformType) String() string {
	switch t {
	case TransformEncr:
		return "ENCR"
	case TransformPRF:
		return "PRF"
	case TransformInteg:
		return "INTEG"
	case TransformDH:
		return "DH"
	case TransformESN:
		return "ESN"
	}
	return fmt.Sprintf("TRANSFORM(%d)", uint8(t))
}

// Transform IDs (IANA "IKEv2 Parameters"). They are plain uint16 because the
// meaning depends on the transform type, and both Transform.ID and KE.Group
// are uint16.
const (
	// Encryption (type 1).
	Encr3DES             uint16 = 3
	EncrAESCBC           uint16 = 12
	EncrAESCTR           uint16 = 13
	EncrAESCCM8          uint16 = 14
	EncrAESCCM12         uint16 = 15
	EncrAESCCM16         uint16 = 16
	EncrAESGCM8          uint16 = 18
	EncrAESGCM12         uint16 = 19
	EncrAESGCM16         uint16 = 20
	EncrCamelliaCBC      uint16 = 23
	EncrChaCha20Poly1305 uint16 = 28

	// Pseudo-random functions (type 2).
	PRFHMACSHA1   uint16 = 2
	PRFAES128XCBC uint16 = 4
	PRFHMACSHA256 uint16 = 5
	PRFHMACSHA384 uint16 = 6
	PRFHMACSHA512 uint16 = 7
	PRFAES128CMAC uint16 = 8

	// Integrity (type 3). AEAD proposals carry IntegNone or no INTEG
	// transform at all.
	IntegNone           uint16 = 0
	IntegHMACSHA1_96    uint16 = 2
	IntegAESXCBC96      uint16 = 5
	IntegAESCMAC96      uint16 = 8
	IntegHMACSHA256_128 uint16 = 12
	IntegHMACSHA384_192 uint16 = 13
	IntegHMACSHA512_256 uint16 = 14

	// Diffie-Hellman / key exchange groups (type 4, and KE.Group).
	DHNone     uint16 = 0
	MODP2048   uint16 = 14
	MODP3072   uint16 = 15
	MODP4096   uint16 = 16
	MODP6144   uint16 = 17
	MODP8192   uint16 = 18
	ECP256     uint16 = 19
	ECP384     uint16 = 20
	ECP521     uint16 = 21
	Curve25519 uint16 = 31
	Curve448   uint16 = 32

	// Extended sequence numbers (type 5).
	ESNNo  uint16 = 0
	ESNYes uint16 = 1
)

// keyLengthAttr is the only transform attribute IKEv2 defines: Key Length in
// TV format (AF bit set, type 14), RFC 7296 §3.3.5.
const keyLengthAttr = 0x800e

// IDType is the ID Type of an IDi/IDr payload (RFC 7296 §3.5).
type IDType uint8

// ID types.
const (
	IDIPv4Addr   IDType = 1
	IDFQDN       IDType = 2
	IDRFC822Addr IDType = 3
	IDIPv6Addr   IDType = 5
	IDDERASN1DN  IDType = 9
	IDDERASN1GN  IDType = 10
	IDKeyID      IDType = 11
)

func (t IDType) String() string {
	switch t {
	case IDIPv4Addr:
		return "ID_IPV4_ADDR"
	case IDFQDN:
		return "ID_FQDN"
	case IDRFC822Addr:
		return "ID_RFC822_ADDR"
	case IDIPv6Addr:
		return "ID_IPV6_ADDR"
	case IDDERASN1DN:
		return "ID_DER_ASN1_DN"
	case IDDERASN1GN:
		return "ID_DER_ASN1_GN"
	case IDKeyID:
		return "ID_KEY_ID"
	}
	return fmt.Sprintf("ID(%d)", uint8(t))
}

// Certificate encodings of CERT and CERTREQ (RFC 7296 §3.6).
const (
	CertX509Signature uint8 = 4
	CertHashURLX509   uint8 = 12
)

// AuthMethod is the Auth Method of an AUTH payload (RFC 7296 §3.8, RFC 4754,
// RFC 7427).
type AuthMethod uint8

// Authentication methods.
const (
	AuthRSA              AuthMethod = 1
	AuthPSK              AuthMethod = 2
	AuthDSS              AuthMethod = 3
	AuthECDSA256         AuthMethod = 9
	AuthECDSA384         AuthMethod = 10
	AuthECDSA521         AuthMethod = 11
	AuthDigitalSignature AuthMethod = 14
)

func (m AuthMethod) String() string {
	switch m {
	case AuthRSA:
		return "RSA"
	case AuthPSK:
		return "PSK"
	case AuthDSS:
		return "DSS"
	case AuthECDSA256:
		return "ECDSA-256"
	case AuthECDSA384:
		return "ECDSA-384"
	case AuthECDSA521:
		return "ECDSA-521"
	case AuthDigitalSignature:
		return "DIGITAL_SIGNATURE"
	}
	return fmt.Sprintf("AUTH(%d)", uint8(m))
}

// CFG types of a CP payload (RFC 7296 §3.15).
const (
	CfgRequest uint8 = 1
	CfgReply   uint8 = 2
	CfgSet     uint8 = 3
	CfgAck     uint8 = 4
)

// Configuration attribute types (RFC 7296 §3.15.1).
const (
	AttrInternalIP4Address  uint16 = 1
	AttrInternalIP4Netmask  uint16 = 2
	AttrInternalIP4DNS      uint16 = 3
	AttrInternalIP4NBNS     uint16 = 4
	AttrInternalIP4DHCP     uint16 = 6
	AttrApplicationVersion  uint16 = 7
	AttrInternalIP6Address  uint16 = 8
	AttrInternalIP6DNS      uint16 = 10
	AttrInternalIP6DHCP     uint16 = 12
	AttrInternalIP4Subnet   uint16 = 13
	AttrSupportedAttributes uint16 = 14
	AttrInternalIP6Subnet   uint16 = 15
)

// Traffic selector types (RFC 7296 §3.13.1) and their fixed lengths.
const (
	tsIPv4AddrRange = 7
	tsIPv6AddrRange = 8
	tsIPv4Len       = 16
	tsIPv6Len       = 40
)

// NotifyType is the Notify Message Type (RFC 7296 §3.10.1). Values below
// 16384 are errors, the rest status.
type NotifyType uint16

// Notify message types: the errors of RFC 7296 and the status types
// strongSwan 5.9.8 sends or understands (RFC 4555 MOBIKE, 4739, 5685, 5998,
// 6023, 6311, 7383, 7427).
const (
	NotifyUnsupportedCriticalPayload NotifyType = 1
	NotifyInvalidIKESPI              NotifyType = 4
	NotifyInvalidMajorVersion        NotifyType = 5
	NotifyInvalidSyntax              NotifyType = 7
	NotifyInvalidMessageID           NotifyType = 9
	NotifyInvalidSPI                 NotifyType = 11
	NotifyNoProposalChosen           NotifyType = 14
	NotifyInvalidKEPayload           NotifyType = 17
	NotifyAuthenticationFailed       NotifyType = 24
	NotifySinglePairRequired         NotifyType = 34
	NotifyNoAdditionalSAs            NotifyType = 35
	NotifyInternalAddressFailure     NotifyType = 36
	NotifyFailedCPRequired           NotifyType = 37
	NotifyTSUnacceptable             NotifyType = 38
	NotifyInvalidSelectors           NotifyType = 39
	NotifyUnacceptableAddresses      NotifyType = 40
	NotifyUnexpectedNATDetected      NotifyType = 41
	NotifyTemporaryFailure           NotifyType = 43
	NotifyChildSANotFound            NotifyType = 44

	NotifyInitialContact              NotifyType = 16384
	NotifySetWindowSize               NotifyType = 16385
	NotifyAdditionalTSPossible        NotifyType = 16386
	NotifyIPCompSupported             NotifyType = 16387
	NotifyNATDetectionSourceIP        NotifyType = 16388
	NotifyNATDetectionDestinationIP   NotifyType = 16389
	NotifyCookie                      NotifyType = 16390
	NotifyUseTransportMode            NotifyType = 16391
	NotifyHTTPCertLookupSupported     NotifyType = 16392
	NotifyRekeySA                     NotifyType = 16393
	NotifyESPTFCPaddingNotSupported   NotifyType = 16394
	NotifyNonFirstFragmentsAlso       NotifyType = 16395
	NotifyMOBIKESupported             NotifyType = 16396
	NotifyAdditionalIP4Address        NotifyType = 16397
	NotifyAdditionalIP6Address        NotifyType = 16398
	NotifyNoAdditionalAddresses       NotifyType = 16399
	NotifyUpdateSAAddresses           NotifyType = 16400
	NotifyCookie2                     NotifyType = 16401
	NotifyNoNATsAllowed               NotifyType = 16402
	NotifyAuthLifetime                NotifyType = 16403
	NotifyMultipleAuthSupported       NotifyType = 16404
	NotifyAnotherAuthFollows          NotifyType = 16405
	NotifyRedirectSupported           NotifyType = 16406
	NotifyRedirect                    NotifyType = 16407
	NotifyRedirectedFrom              NotifyType = 16408
	NotifyEAPOnlyAuthentication       NotifyType = 16417
	NotifyChildlessIKEv2Supported     NotifyType = 16418
	NotifyIKEv2MessageIDSyncSupported NotifyType = 16420
	NotifyFragmentationSupported      NotifyType = 16430
	NotifySignatureHashAlgorithms     NotifyType = 16431
)

var notifyNames = map[NotifyType]string{
	NotifyUnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD",
	NotifyInvalidIKESPI:              "INVALID_IKE_SPI",
	NotifyInvalidMajorVersion:        "INVALID_MAJOR_VERSION",
	NotifyInvalidSyntax:              "INVALID_SYNTAX",
	NotifyInvalidMessageID:           "INVALID_MESSAGE_ID",
	NotifyInvalidSPI:                 "INVALID_SPI",
	NotifyNoProposalChosen:           "NO_PROPOSAL_CHOSEN",
	NotifyInvalidKEPayload:           "INVALID_KE_PAYLOAD",
	NotifyAuthenticationFailed:       "AUTHENTICATION_FAILED",
	NotifySinglePairRequired:         "SINGLE_PAIR_REQUIRED",
	NotifyNoAdditionalSAs:            "NO_ADDITIONAL_SAS",
	NotifyInternalAddressFailure:     "INTERNAL_ADDRESS_FAILURE",
	NotifyFailedCPRequired:           "FAILED_CP_REQUIRED",
	NotifyTSUnacceptable:             "TS_UNACCEPTABLE",
	NotifyInvalidSelectors:           "INVALID_SELECTORS",
	NotifyUnacceptableAddresses:      "UNACCEPTABLE_ADDRESSES",
	NotifyUnexpectedNATDetected:      "UNEXPECTED_NAT_DETECTED",
	NotifyTemporaryFailure:           "TEMPORARY_FAILURE",
	NotifyChildSANotFound:            "CHILD_SA_NOT_FOUND",

	NotifyInitialContact:              "INITIAL_CONTACT",
	NotifySetWindowSize:               "SET_WINDOW_SIZE",
	NotifyAdditionalTSPossible:        "ADDITIONAL_TS_POSSIBLE",
	NotifyIPCompSupported:             "IPCOMP_SUPPORTED",
	NotifyNATDetectionSourceIP:        "NAT_DETECTION_SOURCE_IP",
	NotifyNATDetectionDestinationIP:   "NAT_DETECTION_DESTINATION_IP",
	NotifyCookie:                      "COOKIE",
	NotifyUseTransportMode:            "USE_TRANSPORT_MODE",
	NotifyHTTPCertLookupSupported:     "HTTP_CERT_LOOKUP_SUPPORTED",
	NotifyRekeySA:                     "REKEY_SA",
	NotifyESPTFCPaddingNotSupported:   "ESP_TFC_PADDING_NOT_SUPPORTED",
	NotifyNonFirstFragmentsAlso:       "NON_FIRST_FRAGMENTS_ALSO",
	NotifyMOBIKESupported:             "MOBIKE_SUPPORTED",
	NotifyAdditionalIP4Address:        "ADDITIONAL_IP4_ADDRESS",
	NotifyAdditionalIP6Address:        "ADDITIONAL_IP6_ADDRESS",
	NotifyNoAdditionalAddresses:       "NO_ADDITIONAL_ADDRESSES",
	NotifyUpdateSAAddresses:           "UPDATE_SA_ADDRESSES",
	NotifyCookie2:                     "COOKIE2",
	NotifyNoNATsAllowed:               "NO_NATS_ALLOWED",
	NotifyAuthLifetime:                "AUTH_LIFETIME",
	NotifyMultipleAuthSupported:       "MULTIPLE_AUTH_SUPPORTED",
	NotifyAnotherAuthFollows:          "ANOTHER_AUTH_FOLLOWS",
	NotifyRedirectSupported:           "REDIRECT_SUPPORTED",
	NotifyRedirect:                    "REDIRECT",
	NotifyRedirectedFrom:              "REDIRECTED_FROM",
	NotifyEAPOnlyAuthentication:       "EAP_ONLY_AUTHENTICATION",
	NotifyChildlessIKEv2Supported:     "CHILDLESS_IKEV2_SUPPORTED",
	NotifyIKEv2MessageIDSyncSupported: "IKEV2_MESSAGE_ID_SYNC_SUPPORTED",
	NotifyFragmentationSupported:      "IKEV2_FRAGMENTATION_SUPPORTED",
	NotifySignatureHashAlgorithms:     "SIGNATURE_HASH_ALGORITHMS",
}

// IsError reports whether t is in the error range. RFC 7296 §3.10.1: an
// unrecognised error type in a response means the request failed, while an
// unrecognised status type must be ignored.
func (t NotifyType) IsError() bool { return t < 16384 }

// String returns the IANA name, or ERROR(n)/STATUS(n) for unknown types.
func (t NotifyType) String() string {
	if s, ok := notifyNames[t]; ok {
		return s
	}
	if t.IsError() {
		return fmt.Sprintf("ERROR(%d)", uint16(t))
	}
	return fmt.Sprintf("STATUS(%d)", uint16(t))
}
