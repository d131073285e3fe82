# Mesos on this node, in containers (follows common/node-lib.sh): ZooKeeper
# on the first master; the Mesos master and Marathon (the cluster's API, on
# API_PORT) on every master; the Mesos agent with the Docker and Mesos
# containerizers on the workers. Masters find each other through the first
# master's ZooKeeper.
MESOS_VERSION=$COE_VERSION
mount_volume /var/lib/docker
install_docker
docker_config ""

ZK_HOST=${INIT_ADDRESS:-$NODE_IP}
ZK="zk://$ZK_HOST:2181/mesos"
run() {
  local name=$1
  shift
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --restart always --net host "$@"
}

if [ "$NODE_ROLE" = master ]; then
  if is_true "$NODE_INIT"; then
    run zookeeper "$ZOOKEEPER_IMAGE"
  fi
  mkdir -p /var/lib/mesos
  run mesos-master -e "MESOS_ZK=$ZK" -e "MESOS_QUORUM=$MESOS_QUORUM" -e "MESOS_IP=$NODE_IP" \
    -e "MESOS_HOSTNAME=$NODE_IP" -e "MESOS_CLUSTER=$CLUSTER_NAME" -e MESOS_WORK_DIR=/var/lib/mesos \
    -v /var/lib/mesos:/var/lib/mesos "$MESOS_MASTER_IMAGE:$MESOS_VERSION"
  run marathon "$MARATHON_IMAGE" --master "$ZK" --zk "zk://$ZK_HOST:2181/marathon" \
    --http_port "$API_PORT" --hostname "$NODE_IP"
  for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$API_PORT/ping" >/dev/null && break; sleep 5; done
  curl -fs "http://127.0.0.1:$API_PORT/ping" >/dev/null
else
  mkdir -p "$MESOS_AGENT_WORK_DIR"
  agent_env=(-e "MESOS_MASTER=$ZK" -e "MESOS_IP=$NODE_IP" -e "MESOS_HOSTNAME=$NODE_IP"
    -e "MESOS_CONTAINERIZERS=docker,mesos" -e "MESOS_WORK_DIR=$MESOS_AGENT_WORK_DIR"
    -e MESOS_EXECUTOR_REGISTRATION_TIMEOUT=10mins)
  if [ -n "$MESOS_AGENT_ISOLATION" ]; then agent_env+=(-e "MESOS_ISOLATION=$MESOS_AGENT_ISOLATION"); fi
  if [ -n "$MESOS_AGENT_IMAGE_PROVIDERS" ]; then agent_env+=(-e "MESOS_IMAGE_PROVIDERS=$MESOS_AGENT_IMAGE_PROVIDERS"); fi
  if [ -n "$MESOS_AGENT_EXECUTOR_ENV_VARIABLES" ]; then
    agent_env+=(-e "MESOS_EXECUTOR_ENVIRONMENT_VARIABLES=$MESOS_AGENT_EXECUTOR_ENV_VARIABLES")
  fi
  run mesos-agent "${agent_env[@]}" --privileged --pid host \
    -v /var/run/docker.sock:/var/run/docker.sock -v /sys/fs/cgroup:/sys/fs/cgroup \
    -v "$MESOS_AGENT_WORK_DIR:$MESOS_AGENT_WORK_DIR" "$MESOS_AGENT_IMAGE:$MESOS_VERSION"
fi
done_ok
