package pki

import (
	"crypto/x509"
	"encoding/pem"

	"golang.org/x/crypto/ocsp"
)

type pemBlock = pem.Block

func decodePEM(data []byte) (*pem.Block, []byte) { return pem.Decode(data) }

func ocspRequest(cert, issuer *x509.Certificate) ([]byte, error) {
	return ocsp.CreateRequest(cert, issuer, nil)
}
