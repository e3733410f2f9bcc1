#!/bin/sh
# Regenerates the key files used by keyfile_test.go and example_keys_test.go.
# They are test fixtures only: never use these keys for anything real.
# The password of every encrypted file is "testpass".
set -eu
cd "$(dirname "$0")"
PASS=pass:testpass

openssl genrsa -traditional -out rsa2048-pkcs1.pem 2048 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in rsa2048-pkcs1.pem -out rsa2048-pkcs8.pem
openssl ecparam -name prime256v1 -genkey -out ec-p256-sec1.pem            # EC PARAMETERS + EC PRIVATE KEY
openssl pkcs8 -topk8 -nocrypt -in ec-p256-sec1.pem -out ec-p256-pkcs8.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec-p384-pkcs8.pem
openssl genpkey -algorithm ED25519 -out ed25519-pkcs8.pem
openssl genpkey -algorithm X25519 -out x25519-pkcs8.pem                   # cannot sign: refused

# Encrypted PKCS#8 (PBES2), the formats ParsePrivateKeyPEM must read.
openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -passout $PASS -in ec-p256-pkcs8.pem -out ec-p256-aes256-sha256.pem
openssl pkcs8 -topk8 -v2 aes-128-cbc -v2prf hmacWithSHA1 -passout $PASS -in ec-p256-pkcs8.pem -out ec-p256-aes128-sha1.pem
openssl pkcs8 -topk8 -v2 aes-192-cbc -v2prf hmacWithSHA512 -passout $PASS -in rsa2048-pkcs8.pem -out rsa2048-aes192-sha512.pem
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout $PASS -in ed25519-pkcs8.pem -out ed25519-aes256.pem

# Encryption that must be refused with a clear error.
openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -passout $PASS -in ec-p256-pkcs8.pem -out ec-p256-pbes1.pem
openssl pkcs8 -topk8 -scrypt -passout $PASS -in ec-p256-pkcs8.pem -out ec-p256-scrypt.pem
openssl pkcs8 -topk8 -v2 des3 -passout $PASS -in ec-p256-pkcs8.pem -out ec-p256-des3.pem
openssl ec -aes256 -passout $PASS -in ec-p256-sec1.pem -out ec-p256-proctype.pem 2>/dev/null
