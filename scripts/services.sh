#!/usr/bin/env bash
# Make sure the local servers the tests use are up: PostgreSQL on
# 127.0.0.1:5432, MariaDB on 127.0.0.1:3306 and RabbitMQ on 127.0.0.1:5672. A server that is down is
# started when this machine can start it; otherwise this fails, naming it.
set -uo pipefail

wait_for() { # name, check command...
  local name=$1; shift
  for _ in $(seq 1 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "services: $name is not reachable" >&2
  return 1
}

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
my_up() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }
mq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

status=0
if ! pg_up; then
  echo "services: starting PostgreSQL" >&2
  command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_for "PostgreSQL at 127.0.0.1:5432" pg_up || status=1
fi
if ! my_up; then
  echo "services: starting MariaDB" >&2
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] && start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for "MariaDB at 127.0.0.1:3306" my_up || status=1
fi
if ! mq_up; then
  echo "services: starting RabbitMQ" >&2
  # The node may be up with its application stopped; else start the node.
  rabbitmqctl start_app >/dev/null 2>&1 || { command -v rabbitmq-server >/dev/null && rabbitmq-server -detached; }
  wait_for "RabbitMQ at 127.0.0.1:5672" mq_up || status=1
fi
exit $status
