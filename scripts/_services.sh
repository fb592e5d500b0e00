# PostgreSQL and NATS for scripts/test and scripts/cluster: started if down, installed from Debian
# if missing. Sourced after _setup.sh (which defines apt_install and makes .venv).

# PostgreSQL must answer on 127.0.0.1:5432 with trust auth for user postgres (VROOMS_TEST_POSTGRES
# overrides the URL).
postgres_up() { .venv/bin/python - <<'PY'
import asyncio, os, sys
import asyncpg
url = os.environ.get("VROOMS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
async def main():
    conn = await asyncpg.connect(url, timeout=3)
    await conn.close()
try:
    asyncio.run(main())
except Exception as exc:
    print(f"PostgreSQL not reachable: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

ensure_postgres() {
  postgres_up && return
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
  fi
  local version conf
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "vrooms-test" "$conf"; then
    # Trust local TCP connections, as the project's machines are set up.
    sed -i '1i host all all 127.0.0.1/32 trust # vrooms-test\nhost all all ::1/128 trust # vrooms-test' "$conf"
  fi
  echo "Starting PostgreSQL $version ..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main restart
  for _ in $(seq 30); do postgres_up 2>/dev/null && break; sleep 1; done
  postgres_up
}

# NATS with JetStream on 127.0.0.1:4222 (the cluster's bus).
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }

ensure_nats() {
  nats_up && return
  command -v nats-server >/dev/null || apt_install nats-server
  echo "Starting NATS (JetStream) on 127.0.0.1:4222 ..." >&2
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server)" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 50); do nats_up && return; sleep 0.1; done
  echo "NATS did not start; see /var/log/nats-server.log" >&2
  exit 1
}
