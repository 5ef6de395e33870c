#!/usr/bin/env bash
# Makes the development CA and one TLS certificate per node of
# regions/secure-local.toml (README "Security"): EC P-256, valid for 10
# years, each node's for IP:127.0.0.1 and DNS:localhost. Development only:
# these keys are published on purpose and protect nothing.
#
#   ./make-dev-certs.sh            keep the CA if there is one; remake the node certs
#   ./make-dev-certs.sh --new-ca   remake the CA too (every node cert with it)
#   ./make-dev-certs.sh ID...      the certs of these node ids only
#
# Key files are written with mode 0600 (git does not keep it: `meridianctl
# up` and the tests set it again before use).
set -euo pipefail
cd "$(dirname "$0")"
umask 077

new_ca=0
ids=()
for a in "$@"; do
  case "$a" in
    --new-ca) new_ca=1 ;;
    -*) echo "usage: $0 [--new-ca] [NODE_ID...]" >&2; exit 2 ;;
    *) ids+=("$a") ;;
  esac
done
[ ${#ids[@]} -gt 0 ] || ids=(us-east-1 eu-west-1 ap-south-1)
days=3650

if [ "$new_ca" = 1 ] || [ ! -f ca.pem ] || [ ! -f ca-key.pem ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
  openssl req -x509 -new -sha256 -key ca-key.pem -days "$days" -out ca.pem \
    -subj "/O=Meridian development/CN=Meridian development CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  echo "made ca.pem"
fi

ext=$(mktemp)
trap 'rm -f "$ext" ./*.csr' EXIT
cat > "$ext" <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
for id in "${ids[@]}"; do
  openssl ecparam -name prime256v1 -genkey -noout -out "$id-key.pem"
  openssl req -new -sha256 -key "$id-key.pem" -out "$id.csr" \
    -subj "/O=Meridian development/CN=$id"
  openssl x509 -req -sha256 -in "$id.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days "$days" -extfile "$ext" -out "$id.pem" 2>/dev/null
  chmod 600 "$id-key.pem"
  echo "made $id.pem"
done
chmod 600 ca-key.pem
chmod 644 ca.pem "${ids[@]/%/.pem}"
rm -f ca.srl
