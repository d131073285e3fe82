# Kubernetes on this node, with kubeadm (follows common/node-lib.sh).
# kubeadm runs in external-CA mode on masters (it finds every certificate
# in place and needs no CA key); workers' kubelets get their client
# certificates the same way.
PKI=/etc/kubernetes/pki
ARCH=amd64
KUBE_TAG=$COE_VERSION

# kubeconfig FILE USER SUBJECT SERVER: a kubeconfig with a signed client certificate.
kubeconfig() {
  local file=$1 user=$2 subj=$3 server=$4
  sign "$PKI/kc-$user" "$subj" kubernetes
  cat > "$file" <<KC
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: $PKI/ca.crt, server: "https://$server:6443"}
  name: $CLUSTER_NAME
contexts:
- context: {cluster: $CLUSTER_NAME, user: $user}
  name: default
current-context: default
users:
- name: $user
  user: {client-certificate: $PKI/kc-$user.crt, client-key: $PKI/kc-$user.key}
KC
  chmod 600 "$file"
}

install_packages() {
  local minor
  minor=$(echo "$KUBE_TAG" | sed -E 's/^v?([0-9]+\.[0-9]+).*/v\1/')
  if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -qy containerd curl gpg apt-transport-https conntrack
    curl -fsSL "https://pkgs.k8s.io/core:/stable:/$minor/deb/Release.key" | gpg --dearmor -o /etc/apt/keyrings/kubernetes.gpg
    echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/$minor/deb/ /" > /etc/apt/sources.list.d/kubernetes.list
    apt-get update -q
    apt-get install -qy kubelet kubeadm kubectl
  else
    # Fedora CoreOS: containerd ships with it; Kubernetes binaries go to /opt/bin.
    mkdir -p /opt/bin /opt/cni/bin /etc/systemd/system/kubelet.service.d
    for b in kubeadm kubelet kubectl; do
      curl -fsSL -o "/opt/bin/$b" "https://dl.k8s.io/release/$KUBE_TAG/bin/linux/$ARCH/$b"
      chmod 755 "/opt/bin/$b"
    done
    curl -fsSL "https://github.com/containernetworking/plugins/releases/download/v1.5.1/cni-plugins-linux-$ARCH-v1.5.1.tgz" | tar -xz -C /opt/cni/bin
    cat > /etc/systemd/system/kubelet.service <<UNIT
[Unit]
Description=kubelet
Wants=network-online.target containerd.service
After=network-online.target containerd.service
[Service]
ExecStart=/opt/bin/kubelet \$KUBELET_KUBECONFIG_ARGS \$KUBELET_CONFIG_ARGS \$KUBELET_KUBEADM_ARGS \$KUBELET_EXTRA_ARGS
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
Environment=KUBELET_KUBECONFIG_ARGS=--kubeconfig=/etc/kubernetes/kubelet.conf
Environment=KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml
Restart=always
RestartSec=5
[Install]
WantedBy=multi-user.target
UNIT
    export PATH=/opt/bin:$PATH
  fi
  mkdir -p /etc/containerd
  containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
  if [ -n "$INSECURE_REGISTRY_URL" ]; then
    mkdir -p "/etc/containerd/certs.d/$INSECURE_REGISTRY_URL"
    printf 'server = "http://%s"\n[host."http://%s"]\n  skip_verify = true\n' \
      "$INSECURE_REGISTRY_URL" "$INSECURE_REGISTRY_URL" > "/etc/containerd/certs.d/$INSECURE_REGISTRY_URL/hosts.toml"
  fi
  systemctl enable --now containerd
  modprobe br_netfilter overlay
  sysctl -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  systemctl enable kubelet
}

mkdir -p "$PKI/etcd" /var/lib/magnum
mount_volume /var/lib/containerd
install_packages
ca "$PKI/ca.crt" kubernetes
ca "$PKI/front-proxy-ca.crt" front_proxy
ca "$PKI/etcd/ca.crt" etcd
JOIN=${JOIN_ADDRESS:-$NODE_IP}
ENDPOINT=${API_ADDRESS:-$JOIN}
SERVICE_IP=$(echo "$SERVICE_CLUSTER_IP_RANGE" | awk -F'[./]' '{print $1"."$2"."$3"."$4+1}')

if [ "$NODE_ROLE" = master ]; then
  sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$NODE_NAME,IP:$NODE_IP,IP:$SERVICE_IP,IP:$JOIN"
  [ -n "$API_ADDRESS" ] && sans="$sans,IP:$API_ADDRESS"
  sign "$PKI/apiserver" "/CN=kube-apiserver" kubernetes "$sans"
  sign "$PKI/apiserver-kubelet-client" "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" kubernetes
  sign "$PKI/front-proxy-client" "/CN=front-proxy-client" front_proxy
  sign "$PKI/etcd/server" "/CN=$NODE_NAME" etcd "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  sign "$PKI/etcd/peer" "/CN=$NODE_NAME" etcd "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  sign "$PKI/etcd/healthcheck-client" "/CN=kube-etcd-healthcheck-client" etcd
  sign "$PKI/apiserver-etcd-client" "/CN=kube-apiserver-etcd-client" etcd
  kubeconfig /etc/kubernetes/admin.conf kubernetes-admin "/O=system:masters/CN=kubernetes-admin" "$JOIN"
  kubeconfig /etc/kubernetes/super-admin.conf kubernetes-super-admin "/O=system:masters/CN=kubernetes-super-admin" "$JOIN"
  kubeconfig /etc/kubernetes/controller-manager.conf controller-manager "/CN=system:kube-controller-manager" "$NODE_IP"
  kubeconfig /etc/kubernetes/scheduler.conf scheduler "/CN=system:kube-scheduler" "$NODE_IP"
  kubeconfig /etc/kubernetes/kubelet.conf "node-$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" "$JOIN"
  # The service-account signing key. Known gap: each master makes its own,
  # so with several masters a token signed by one is refused by the others;
  # sharing it needs a secret store the masters can all read.
  if [ ! -f "$PKI/sa.key" ]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  cat > /etc/kubernetes/kubeadm.yaml <<CFG
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens: [{token: "$BOOTSTRAP_TOKEN", ttl: "0s"}]
nodeRegistration: {name: "$NODE_NAME", criSocket: "unix:///run/containerd/containerd.sock"}
localAPIEndpoint: {advertiseAddress: "$NODE_IP", bindPort: 6443}
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
clusterName: "$CLUSTER_NAME"
kubernetesVersion: "$KUBE_TAG"
controlPlaneEndpoint: "$ENDPOINT:$API_PORT"
networking: {podSubnet: "$PODS_NETWORK_CIDR", serviceSubnet: "$SERVICE_CLUSTER_IP_RANGE"}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
CFG
  if [ "$NODE_INIT" = "True" ] || [ "$NODE_INIT" = "true" ]; then
    kubeadm init --config /etc/kubernetes/kubeadm.yaml --skip-phases=addon/kube-proxy
    kubeadm init phase addon kube-proxy --config /etc/kubernetes/kubeadm.yaml
    export KUBECONFIG=/etc/kubernetes/admin.conf
    case "$NETWORK_DRIVER" in
      calico) kubectl apply -f https://raw.githubusercontent.com/projectcalico/calico/v3.28.1/manifests/calico.yaml ;;
      *) curl -fsSL https://github.com/flannel-io/flannel/releases/latest/download/kube-flannel.yml \
           | sed "s#10.244.0.0/16#$PODS_NETWORK_CIDR#" | kubectl apply -f - ;;
    esac
  else
    kubeadm join "$JOIN:6443" --token "$BOOTSTRAP_TOKEN" --control-plane \
      --discovery-token-unsafe-skip-ca-verification --apiserver-advertise-address "$NODE_IP"
  fi
else
  kubeconfig /etc/kubernetes/kubelet.conf "node-$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" "$JOIN"
  hash=$(openssl x509 -pubkey -in "$PKI/ca.crt" | openssl pkey -pubin -outform der 2>/dev/null | sha256sum | cut -d' ' -f1)
  kubeadm join "$JOIN:6443" --token "$BOOTSTRAP_TOKEN" --discovery-token-ca-cert-hash "sha256:$hash" \
    --node-name "$NODE_NAME" --ignore-preflight-errors=FileAvailable--etc-kubernetes-kubelet.conf
fi

done_ok
