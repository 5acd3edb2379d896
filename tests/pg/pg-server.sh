#!/usr/bin/env bash
# A throw-away PostgreSQL 15 server for the store's tests.
#
#   pg-server.sh start DIR   initdb into DIR/data, start it listening on a unix socket in DIR
#                            only, create the database `microcare_test`, and write its URL to
#                            DIR/url (the tests read it; MICROCARE_TEST_PG_URL overrides it)
#   pg-server.sh stop DIR    stop the server and remove DIR
#
# No TCP: the socket lives in DIR, so parallel runs never compete for a port. When PostgreSQL's
# server binaries are not installed, `start` writes DIR/skip with the reason and succeeds: the
# PostgreSQL tests then skip with that message (deploy/test.sh installs postgresql-15).
# initdb refuses to run as root: as root the server runs as the `postgres` user (or `nobody`),
# which owns DIR.
set -euo pipefail
action="${1:?usage: pg-server.sh start|stop DIR}"
dir="${2:?usage: pg-server.sh start|stop DIR}"

find_bin() {
  # Debian's packaged server first (postgresql-15), then whatever is on PATH.
  local candidate
  for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
      echo "$candidate"
      return 0
    fi
  done
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

run_as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

owner="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  owner=postgres
  id postgres >/dev/null 2>&1 || owner=nobody
fi

case "$action" in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! bin="$(find_bin)"; then
      echo "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql-15" \
        >"$dir/skip"
      echo "pg-server: $(cat "$dir/skip"); PostgreSQL tests will be skipped"
      exit 0
    fi
    [ "$(id -u)" = 0 ] && chown "$owner" "$dir"
    run_as_owner "$bin/initdb" -D "$dir/data" -U "$owner" -A trust --no-sync -E UTF8 \
      --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
    # fsync off: the tests check semantics, durability has the SQLite store's killed-process
    # test; max_connections for the concurrency tests' several stores per test, in parallel.
    run_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off \
          -c max_connections=200 -c full_page_writes=off" start >/dev/null \
      || { cat "$dir/server.log"; exit 1; }
    run_as_owner "$bin/psql" -h "$dir" -U "$owner" -d postgres -qAt \
      -c "CREATE DATABASE microcare_test" >/dev/null
    echo "postgresql:///microcare_test?host=$dir&user=$owner" >"$dir/url"
    echo "pg-server: PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') at $(cat "$dir/url")"
    ;;
  stop)
    if [ -d "$dir/data" ] && bin="$(find_bin)"; then
      run_as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg-server.sh start|stop DIR" >&2
    exit 2
    ;;
esac
