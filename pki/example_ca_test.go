package pki_test

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"

	"github.com/remotegate/remotegate/pki"
)

// The broker's CA issues a certificate for plant 7's gateway, which later
// is taken out of service: its certificate is revoked and the next CRL
// lists it.
func ExampleCA() {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "Plant Access CA"})
	if err != nil {
		fmt.Println(err)
		return
	}
	deviceKey, _ := pki.GenerateKey(pki.ECDSAP256) // on the device, in practice
	cert, err := ca.Issue(pki.Request{Profile: pki.ProfileDevice, CommonName: "plant7-gw", PublicKey: deviceKey.Public()})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("issued to", cert.Subject.CommonName, "for", cert.ExtKeyUsage[0] == x509.ExtKeyUsageClientAuth)

	v := &pki.Verifier{CA: ca}
	name, err := v.Verify([]*x509.Certificate{cert})
	fmt.Println("verified as", name, err)

	_ = ca.Revoke(cert.SerialNumber, pki.ReasonCessationOfOperation)
	_, err = v.Verify([]*x509.Certificate{cert})
	fmt.Println(err != nil)

	der, _ := ca.CRL()
	crl, _ := x509.ParseRevocationList(der)
	fmt.Println("CRL entries:", len(crl.RevokedCertificateEntries), crl.RevokedCertificateEntries[0].SerialNumber.Cmp(cert.SerialNumber) == 0)
	// Output:
	// issued to plant7-gw for true
	// verified as plant7-gw <nil>
	// true
	// CRL entries: 1 true
}

// A device enrolls itself with the one-time token the administrator gave
// it; the token decides the identity.
func ExampleCA_Enroll() {
	ca, _ := pki.NewCA(pki.CAConfig{})
	token, _ := ca.NewEnrollmentToken(pki.TokenRequest{Profile: pki.ProfileDevice, CommonName: "plant7-gw"})

	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	cert, err := ca.Enroll(token, csr)
	fmt.Println(cert.Subject.CommonName, err)
	_, err = ca.Enroll(token, csr)
	fmt.Println(err)
	// Output:
	// plant7-gw <nil>
	// pki: enrollment token already used
}
