#!/bin/bash
# The start of every node's installer (magnum-rs): settings, the wait
# condition's signal, a token acting for the cluster's owner through its
# trust, and the cluster's certificates through Magnum's API. The COE's own
# part (templates/<coe>/node.sh) follows it in one script.
#
# Settings come from /etc/magnum/node.env (written by the boot
# configuration). Private keys are made here and never leave the node:
# every certificate is signed by the cluster's CAs through Magnum's API
# (POST /v1/certificates), authenticated as the cluster's trustee. When
# done, the node's wait condition is signalled (success or failure, with
# the reason).
set -euo pipefail
set -a
. /etc/magnum/node.env
set +a

NODE_IP=$(ip -4 route get 1.1.1.1 | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')

signal() {
  local status=$1 reason=$2
  local cmd
  cmd=$(cat /etc/magnum/signal)
  eval "$cmd --data-binary '{\"status\": \"$status\", \"reason\": \"$reason\"}'" || true
}
trap 'signal FAILURE "$(basename "$0") failed at line $LINENO on $NODE_NAME"' ERR

for v in HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!v}" ]; then export "${v,,}=${!v}"; fi
done

is_true() { [ "$1" = "True" ] || [ "$1" = "true" ]; }

# Container storage on the Cinder volume, when the cluster has one.
# mount_volume DIR
mount_volume() {
  [ "${DOCKER_VOLUME_SIZE:-0}" != 0 ] || return 0
  local dev
  dev=$(lsblk -dpno NAME,TYPE | awk '$2 == "disk" {print $1}' | grep -v "$(findmnt -no SOURCE / | sed 's/[0-9]*$//')" | head -1)
  if [ -n "$dev" ] && ! blkid "$dev" >/dev/null; then mkfs.xfs -f "$dev"; fi
  mkdir -p "$1"
  echo "$dev $1 xfs defaults 0 2" >> /etc/fstab
  mount "$1"
}

# A token acting for the cluster's owner.
curl_opts=(-fsS --retry 10 --retry-delay 5)
is_true "$VERIFY_CA" || curl_opts+=(-k)
TOKEN=$(curl "${curl_opts[@]}" -i -X POST "$AUTH_URL/auth/tokens" -H 'Content-Type: application/json' \
  -d "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": {\"id\": \"$TRUSTEE_USER_ID\", \"password\": \"$TRUSTEE_PASSWORD\"}}}, \"scope\": {\"OS-TRUST:trust\": {\"id\": \"$TRUST_ID\"}}}}" \
  | tr -d '\r' | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}')

magnum() {
  curl "${curl_opts[@]}" -H "X-Auth-Token: $TOKEN" -H 'OpenStack-API-Version: container-infra latest' \
    -H 'Content-Type: application/json' "$@"
}
json_field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | sed 's/\\n/\n/g'; }

# ca FILE TYPE: the cluster's CA of TYPE (kubernetes, etcd, front_proxy).
ca() {
  magnum "$MAGNUM_URL/certificates/$CLUSTER_UUID?ca_cert_type=$2" | json_field pem > "$1"
}

# sign DIR/NAME SUBJECT TYPE [SANS]: a key made here (NAME.key) and its
# certificate (NAME.crt) signed by the CA of TYPE.
sign() {
  local name=$1 subj=$2 type=$3 sans=${4:-}
  local conf
  conf=$(mktemp)
  printf '[req]\ndistinguished_name=dn\n[dn]\n[ext]\n' > "$conf"
  if [ -n "$sans" ]; then printf 'subjectAltName=%s\n' "$sans" >> "$conf"; fi
  printf 'keyUsage=critical,digitalSignature,keyEncipherment\n' >> "$conf"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$name.key" -subj "$subj" \
    -config "$conf" -reqexts ext -out "$name.csr" 2>/dev/null
  chmod 600 "$name.key"
  local csr
  csr=$(awk '{printf "%s\\n", $0}' "$name.csr")
  magnum -X POST "$MAGNUM_URL/certificates" \
    -d "{\"cluster_uuid\": \"$CLUSTER_UUID\", \"csr\": \"$csr\", \"ca_cert_type\": \"$type\"}" \
    | json_field pem > "$name.crt"
  rm -f "$conf" "$name.csr"
}

# Docker from Docker's own apt repository, at DOCKER_VERSION when set.
install_docker() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -qy ca-certificates curl gpg
  install -m 0755 -d /etc/apt/keyrings
  curl -fsSL https://download.docker.com/linux/ubuntu/gpg | gpg --dearmor -o /etc/apt/keyrings/docker.gpg
  . /etc/os-release
  echo "deb [signed-by=/etc/apt/keyrings/docker.gpg] https://download.docker.com/linux/ubuntu $VERSION_CODENAME stable" \
    > /etc/apt/sources.list.d/docker.list
  apt-get update -q
  local pin=""
  if [ -n "${DOCKER_VERSION:-}" ]; then
    pin=$(apt-cache madison docker-ce | awk -v v="$DOCKER_VERSION" '$3 ~ "^5:"v {print "="$3; exit}')
  fi
  apt-get install -qy "docker-ce$pin" "docker-ce-cli$pin" containerd.io
}

# docker_config [MEMBERS]: Docker's daemon.json with the insecure registry
# and MEMBERS (more JSON members), then a restart. The unit's own -H goes,
# so daemon.json may name the daemon's hosts.
docker_config() {
  local registries="[]"
  if [ -n "$INSECURE_REGISTRY_URL" ]; then registries="[\"$INSECURE_REGISTRY_URL\"]"; fi
  mkdir -p /etc/docker /etc/systemd/system/docker.service.d
  printf '{"insecure-registries": %s%s}\n' "$registries" "${1:+, $1}" > /etc/docker/daemon.json
  printf '[Service]\nExecStart=\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock\n' \
    > /etc/systemd/system/docker.service.d/magnum.conf
  systemctl daemon-reload
  systemctl restart docker
}

done_ok() {
  mkdir -p /var/lib/magnum
  touch /var/lib/magnum/node-done
  signal SUCCESS "$NODE_NAME joined the cluster"
}
