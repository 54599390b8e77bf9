#!/bin/sh
# Test PKI: mkcerts.sh DIR. Makes (ECDSA P-256, quick under TCG):
#   ca.pem/ca.key          the test CA
#   server.pem/server.key  server.test, localhost, 127.0.0.1, ::1, 10.99.0.1, fd99::1,
#                          10.99.0.3, 10.99.0.4 (not 10.99.0.5: a host that is not who it says)
#   client.pem/client.key  client.test
#   other-ca.pem, other-server.pem/.key   a second CA nobody trusts, and a server it signed
#   self.pem/self.key      a self-signed server certificate
#   ca-crl.pem             the CA's (empty) CRL
# Idempotent: does nothing when DIR holds what this version of the script makes.
set -eu
d=$1
version=2
[ -f "$d/ca.pem" ] && [ "$(cat "$d/.version" 2>/dev/null)" = $version ] && exit 0
rm -rf "$d"
mkdir -p "$d"
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$1.pem" 2>/dev/null
}
leaf() { # name ca cn san eku
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" "$5" > "$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 3650 -sha256 \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}
ca ca "rpctls test CA"
ca other-ca "some other CA"
leaf server ca server.test "DNS:server.test,DNS:localhost,IP:127.0.0.1,IP:::1,IP:10.99.0.1,IP:fd99::1,IP:10.99.0.3,IP:10.99.0.4" \
	"serverAuth,1.3.6.1.5.5.7.3.34"
leaf client ca client.test "DNS:client.test" "clientAuth,1.3.6.1.5.5.7.3.33"
leaf other-server other-ca server.test "DNS:server.test,IP:127.0.0.1,IP:10.99.0.1,IP:fd99::1" serverAuth
key self.key
openssl req -x509 -new -key self.key -sha256 -days 3650 -subj "/CN=server.test" \
	-addext "subjectAltName=DNS:server.test,IP:127.0.0.1,IP:10.99.0.1" -out self.pem 2>/dev/null
# An empty CRL of the CA (tests that revoke write their own).
printf '[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\ndefault_crl_days=3650\n' > ca.cnf
: > index.txt
echo 01 > crlnumber
openssl ca -config ca.cnf -gencrl -keyfile ca.key -cert ca.pem -out ca-crl.pem 2>/dev/null
echo $version > .version
