#!/usr/bin/env bash
# What `make test` needs beyond Python packages: Debian's Chromium for the dashboard tests, and
# reachable Redis and PostgreSQL. Missing services fail loudly with how to start them: the
# suite never silently skips a real-service test.
set -euo pipefail

REDIS_URL="${RISKSTREAM_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
PG_HOST="${RISKSTREAM_TEST_PG_HOST:-127.0.0.1}"
PG_PORT="${RISKSTREAM_TEST_PG_PORT:-5432}"

# Debian packages: chromium (browser tests) and prometheus (a real scrape of /metrics).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages for the tests: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "ERROR: missing ${missing[*]}. Install: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

fail=0
if ! .venv/bin/python - "$REDIS_URL" <<'PY'
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
PY
then
  cat >&2 <<MSG
ERROR: Redis is not reachable at $REDIS_URL. Start one, e.g.:
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  (or: docker compose -f deploy/docker-compose.yml up -d redis)
MSG
  fail=1
fi
if ! .venv/bin/python - "$PG_HOST" "$PG_PORT" <<'PY'
import sys, psycopg
psycopg.connect(host=sys.argv[1], port=int(sys.argv[2]), user="postgres", dbname="test",
                connect_timeout=3).close()
PY
then
  cat >&2 <<MSG
ERROR: PostgreSQL is not reachable at $PG_HOST:$PG_PORT (user postgres, database test). Start it:
  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
  (or: docker compose -f deploy/docker-compose.yml up -d postgres)
MSG
  fail=1
fi
exit $fail
