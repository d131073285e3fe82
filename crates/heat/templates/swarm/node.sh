# Docker Swarm mode on this node (follows common/node-lib.sh): Docker's API
# on API_PORT, with TLS unless the cluster has none (the daemon's server
# certificate and this node's client certificate signed by the cluster's
# CA); the first manager initialises the swarm, further managers and the
# workers join it with the join tokens the first manager hands out over
# its TLS API.
DOCKER_VERSION=$COE_VERSION
CERTS=/etc/docker/magnum
mkdir -p "$CERTS"
mount_volume /var/lib/docker
install_docker

tls=()
if is_true "$TLS_DISABLED"; then
  docker_config "\"hosts\": [\"unix:///var/run/docker.sock\", \"tcp://0.0.0.0:$API_PORT\"]"
else
  ca "$CERTS/ca.pem" kubernetes
  sans="DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  if [ -n "$API_ADDRESS" ]; then sans="$sans,IP:$API_ADDRESS"; fi
  if [ -n "$JOIN_ADDRESS" ]; then sans="$sans,IP:$JOIN_ADDRESS"; fi
  sign "$CERTS/server" "/CN=$NODE_NAME" kubernetes "$sans"
  sign "$CERTS/client" "/CN=$NODE_NAME" kubernetes
  docker_config "\"hosts\": [\"unix:///var/run/docker.sock\", \"tcp://0.0.0.0:$API_PORT\"], \"tlsverify\": true, \"tlscacert\": \"$CERTS/ca.pem\", \"tlscert\": \"$CERTS/server.crt\", \"tlskey\": \"$CERTS/server.key\""
  tls=(--tlsverify --tlscacert "$CERTS/ca.pem" --tlscert "$CERTS/client.crt" --tlskey "$CERTS/client.key")
fi

if is_true "$NODE_INIT"; then
  docker swarm init --advertise-addr "$NODE_IP"
else
  manager=${INIT_ADDRESS:-$JOIN_ADDRESS}
  role=worker
  if [ "$NODE_ROLE" = master ]; then role=manager; fi
  token=""
  for _ in $(seq 1 60); do
    token=$(docker -H "tcp://$manager:$API_PORT" "${tls[@]}" swarm join-token -q "$role" 2>/dev/null) && break
    sleep 10
  done
  [ -n "$token" ]
  docker swarm join --token "$token" --advertise-addr "$NODE_IP" "$manager:2377"
fi
done_ok
