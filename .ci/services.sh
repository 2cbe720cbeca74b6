#!/usr/bin/env bash
# Makes sure the services fleetcore's tests need are installed and running:
# PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and RabbitMQ on
# 127.0.0.1:5672 (guest/guest). Installs them with apt-get when missing.
# Idempotent; safe to run before every test run.
set -euo pipefail

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "services: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
if ! pg_up; then
  echo "services: starting PostgreSQL"
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { echo "services: PostgreSQL did not start" >&2; exit 1; }
fi
# trust auth for local TCP connections (fresh installs default to scram)
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  echo "services: enabling trust auth on 127.0.0.1 in $hba"
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
fi

amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) >/dev/null 2>&1; }
if ! amqp_up; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
  for _ in $(seq 1 120); do amqp_up && break; sleep 0.5; done
  amqp_up || { echo "services: RabbitMQ did not start" >&2; exit 1; }
  rabbitmqctl await_startup >/dev/null 2>&1 || true
fi
echo "services: PostgreSQL and RabbitMQ are up"
