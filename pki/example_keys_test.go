package pki_test

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/remotegate/remotegate/pki"
)

// A CA or device key kept in an encrypted PKCS#8 file, as written by
// "openssl genpkey ... -aes256" or MarshalPrivateKeyPEM.
func ExampleLoadKeyFile() {
	key, err := pki.LoadKeyFile("testdata/keys/ec-p256-aes256-sha256.pem", []byte("testpass"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T\n", key.Public())

	_, err = pki.LoadKeyFile("testdata/keys/ec-p256-aes256-sha256.pem", []byte("guess"))
	fmt.Println(errors.Is(err, pki.ErrWrongPassword))
	// Output:
	// *ecdsa.PublicKey
	// true
}

func ExampleParsePrivateKeyPEM() {
	pemBytes, err := os.ReadFile("testdata/keys/rsa2048-pkcs1.pem")
	if err != nil {
		log.Fatal(err)
	}
	key, err := pki.ParsePrivateKeyPEM(pemBytes, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T\n", key)

	// Old OpenSSL "Proc-Type: 4,ENCRYPTED" keys are refused with advice.
	legacy, _ := os.ReadFile("testdata/keys/ec-p256-proctype.pem")
	_, err = pki.ParsePrivateKeyPEM(legacy, []byte("testpass"))
	fmt.Println(errors.Is(err, pki.ErrLegacyEncryption))
	// Output:
	// *rsa.PrivateKey
	// true
}

func ExampleMarshalPrivateKeyPEM() {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		log.Fatal(err)
	}
	pemBytes, err := pki.MarshalPrivateKeyPEM(key, []byte("correct horse battery staple"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", pemBytes[:38])
	// Output:
	// -----BEGIN ENCRYPTED PRIVATE KEY-----
}

func ExampleParsePKCS11URI() {
	u, err := pki.ParsePKCS11URI("pkcs11:token=Remotegate%20CA;object=root-2025;id=%01%02;type=private" +
		"?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("token %q, key %q, id %x\n", u.Token, u.Object, u.ID)
	fmt.Println(u) // the PIN is redacted

	cfg, err := u.Config()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Module)
	// With cgo and a token present:
	//   tok, err := pki.OpenToken(cfg)
	//   caKey, err := tok.Signer(u.Object, u.ID)

	_, err = pki.ParsePKCS11URI("pkcs11:token=CA;type=secret")
	fmt.Println(err)
	// Output:
	// token "Remotegate CA", key "root-2025", id 0102
	// pkcs11:token=Remotegate%20CA;object=root-2025;id=%01%02;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=REDACTED
	// /usr/lib/softhsm/libsofthsm2.so
	// pki: invalid PKCS#11 URI: attribute "type": "secret" is not one of public, private, cert, secret-key, data
}
