#!/usr/bin/env bash
# The Debian package, installed for real on this machine (root, Debian 12: CI's machine): built
# from the already-built build dir (deploy/package.sh), installed with apt-get, its user, data
# directory and unit checked, the installed /usr/bin/microcare run from the installed layout, then
# removed and purged, and each checked. One line per step; details in $dir/package-test/*.log.
#
# Whatever happens, the package and everything it made are purged on exit (trap): the pack the
# package installs under /usr/share/microcare, and the copy a test puts in /etc/microcare/rules,
# would otherwise be found by DefaultRulePackPath (adapter/rule_pack_file.cpp: sysconfdir first)
# in every later run of the suite on this machine. It refuses to run where MicroCare is already
# installed, so it never touches a real install.
#
# Environment:
#   MICROCARE_BUILD_DIR  the build to package (build)
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${MICROCARE_BUILD_DIR:-build}"
logs="$dir/package-test"
rm -rf "$logs" && mkdir -p "$logs" && logs="$(cd "$logs" && pwd)"  # absolute: steps run from /
fail() { echo "package-test: $*" >&2; exit 1; }

# It installs a package: as another user (README's "with sudo"), it says so and stops. CI is root.
if [ "$(id -u)" -ne 0 ]; then
    echo "package-test: skipped: installing the package needs root (CI runs it as root)"
    exit 0
fi
if dpkg-query -W -f='${Status}' microcare 2>/dev/null | grep -qv "not-installed" ||
        [ -e /etc/microcare ] || [ -e /usr/share/microcare ] || [ -e /var/lib/microcare ] ||
        getent passwd microcare >/dev/null; then
    fail "MicroCare is already installed here (package, /etc/microcare, /usr/share/microcare," \
        "/var/lib/microcare or the microcare user): not touching it (MICROCARE_PACKAGE=0 skips this)"
fi

serve_pid=""
cleanup() {
    if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" || true; fi
    if [ -n "${backups:-}" ]; then rm -rf "$backups"; fi
    dpkg --purge microcare >"$logs/cleanup.log" 2>&1 || true
    rm -rf /etc/microcare /usr/share/microcare /usr/share/doc/microcare /var/lib/microcare
    if getent passwd microcare >/dev/null; then userdel microcare || true; fi
    if getent group microcare >/dev/null; then groupdel microcare || true; fi
}
trap cleanup EXIT

# 1. Build the .deb.
deb="$(deploy/package.sh | tail -n 1)"
dpkg-deb --info "$deb" >"$logs/info.txt"
depends="$(dpkg-deb --field "$deb" Depends)"
# dpkg-shlibdeps ran: the libraries the binary links are named (not an empty or guessed list).
for lib in libc6 libstdc++6 libssl3 libsqlite3-0 libboost-url1.81.0; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
echo "package-test: built $(basename "$deb"); Depends: $depends"

# 2. Install it as an admin would: apt-get resolves the dependencies.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" \
    >"$logs/install.log" 2>&1 || { tail -n 20 "$logs/install.log" >&2; fail "apt-get install failed"; }
grep -q "installed, not started" "$logs/install.log" || fail "postinst did not say it left the service stopped"
echo "package-test: installed with apt-get; postinst left the service stopped, and its start gate (config check) is closed"

# 3. What postinst made: the user, the data directory, the configuration's and secrets' modes.
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd microcare) || fail "no microcare user"
[ "$home" = /var/lib/microcare ] && [ "$shell" = /usr/sbin/nologin ] ||
    fail "microcare user: home $home, shell $shell"
check_mode() {  # path owner:group mode
    local got
    got="$(stat -c '%U:%G %a' "$1")"
    [ "$got" = "$2 $3" ] || fail "$1 is $got, wanted $2 $3"
}
# postinst's gate for (re)starting the unit (systemd is not running here, so postinst never
# reaches it): its own function, run on the installed configuration.
postinst_configured() {
    sh -c "$(sed -n '/^configured()/,/^}/p' /var/lib/dpkg/info/microcare.postinst); configured"
}
! postinst_configured || fail "postinst would start the unit on a fresh, unconfigured install"
check_mode /var/lib/microcare microcare:microcare 750
check_mode /etc/microcare root:microcare 750
check_mode /etc/microcare/microcare.json root:microcare 640
check_mode /etc/microcare/microcare.env root:root 600
check_mode /usr/bin/microcare root:root 755
[ -f /usr/lib/systemd/system/microcare.service ] || fail "no unit in /usr/lib/systemd/system"
[ -f /usr/share/doc/microcare/OPERATIONS.md ] || fail "no OPERATIONS.md in /usr/share/doc/microcare"
echo "package-test: user microcare (nologin), /var/lib/microcare microcare:microcare 0750," \
    "/etc/microcare root:microcare 0750, microcare.env 0600, unit and docs in place"
# The installed unit, offline (no systemd runs here): every directive known, the binary there,
# and its exposure score (deploy/OPERATIONS.md lists what is left open).
if command -v systemd-analyze >/dev/null; then
    # verify exits 0 on an unknown or misspelt directive (it only warns): any output fails.
    systemd-analyze verify /usr/lib/systemd/system/microcare.service >"$logs/verify.txt" 2>&1 &&
        [ ! -s "$logs/verify.txt" ] ||
        { cat "$logs/verify.txt" >&2; fail "systemd-analyze verify refused the unit"; }
    systemd-analyze security --offline=true /usr/lib/systemd/system/microcare.service \
        >"$logs/security.txt" 2>&1 || true
    echo "package-test: systemd-analyze verify passed; security: $(grep -o 'exposure level.*' "$logs/security.txt" || echo 'no score, see security.txt')"
else
    echo "package-test: no systemd-analyze here: the unit's directives and score not checked"
fi

# 4. The installed binary, from the installed layout, as the service user, from /: it must find
# its default pack beside it (/usr/share/microcare), with no source tree or variable to help.
run() { (cd / && env -u MICROCARE_RULES runuser -u microcare -- /usr/bin/microcare "$@"); }
run rules check /usr/share/microcare/rules/microneedling.json >"$logs/rules-check.txt" 2>&1 ||
    { cat "$logs/rules-check.txt" >&2; fail "rules check refused the installed pack"; }
echo "package-test: $(head -n 1 "$logs/rules-check.txt")"
example=/usr/share/microcare/examples/absolute-isotretinoin.json
evaluate() {  # expected pack version
    run evaluate --now 2026-11-24T12:00:00Z "$example" >"$logs/evaluate.json" 2>"$logs/evaluate.log" ||
        { cat "$logs/evaluate.log" >&2; fail "evaluate failed"; }
    grep -q '"CarePlan"' "$logs/evaluate.json" || fail "evaluate wrote no CarePlan"
    grep -q "\"$1\"" "$logs/evaluate.json" || fail "evaluate did not use the pack version $1"
}
# The pack is marked, so that the output shows which file was read: the installed one, not the
# build's source tree (the compiled-in last resort, present on this machine).
sed -i '0,/"version": *"/s//&installed-/' /usr/share/microcare/rules/microneedling.json
evaluate "installed-1\.0\.0"
echo "package-test: evaluate (as microcare, from /) used the installed default pack /usr/share/microcare/rules"

# 5. OPERATIONS.md's install steps 3-5, literally (test certificates instead of the clinic's PKI),
# then the first start without systemd (the unit needs a host running it): as microcare, from
# the installed layout, with the secrets loaded as the unit loads them.
pki="$logs/pki" && mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$pki/server.key" \
    -out "$pki/server.pem" >"$logs/pki.log" 2>&1
cp "$pki/server.pem" "$pki/ehr-ca.pem"
(
    set -e
    cd /etc/microcare
    install -d -o root -g microcare -m 0750 tls smart rules
    install -o root -g microcare -m 0640 "$pki/server.pem" tls/server.pem
    install -o root -g microcare -m 0640 "$pki/server.key" tls/server.key
    install -o root -g microcare -m 0640 "$pki/ehr-ca.pem" tls/ehr-ca.pem
    openssl ecparam -name secp384r1 -genkey -noout -out smart/private-key.pem
    chgrp microcare smart/private-key.pem; chmod 0640 smart/private-key.pem
    openssl ec -in smart/private-key.pem -pubout -out smart/public-key.pem 2>/dev/null
    (umask 0227; openssl rand -hex 32 > audit.key); chgrp microcare audit.key
    # "editor microcare.env": the test's values. The EHR is not reached before a job arrives.
    sed -i -e "s|^MICROCARE_INBOUND_TOKEN=.*|MICROCARE_INBOUND_TOKEN=$(openssl rand -hex 16)|" \
        -e 's|^MICROCARE_EHR_BASE_URL=.*|MICROCARE_EHR_BASE_URL=https://ehr.invalid/fhir|' \
        -e 's|^MICROCARE_SMART_CLIENT_ID=.*|MICROCARE_SMART_CLIENT_ID=microcare-test|' microcare.env
    install -o root -g microcare -m 0640 /usr/share/microcare/rules/microneedling.json rules/
) >"$logs/operations.log" 2>&1 || { cat "$logs/operations.log" >&2; fail "OPERATIONS.md steps 3-4 failed"; }
check_mode /etc/microcare/smart/private-key.pem root:microcare 640
check_mode /etc/microcare/audit.key root:microcare 440
! runuser -u nobody -- cat /etc/microcare/audit.key >/dev/null 2>&1 || fail "nobody can read the audit key"
# A free port for this run, as an admin sets server.port (8443 may be taken on this machine).
port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
sed -i "s/\"port\": 8443/\"port\": $port/" /etc/microcare/microcare.json
(
    set -a; . /etc/microcare/microcare.env; set +a
    cd /
    runuser -u microcare -- microcare rules check /etc/microcare/rules/microneedling.json &&
    runuser -u microcare -- microcare config check /etc/microcare/microcare.json
) >"$logs/config-check.txt" 2>&1 || { cat "$logs/config-check.txt" >&2; fail "config check refused the installed configuration"; }
grep -q "^/etc/microcare/microcare.json: valid" "$logs/config-check.txt" || fail "config check did not say valid"
postinst_configured || fail "postinst would not start the unit once configured"
echo "package-test: OPERATIONS.md steps 3-5: secrets made with their modes, pack signed off, postinst's start gate open," \
    "config check (as microcare): $(grep -o 'microcare.json: valid.*' "$logs/config-check.txt")"
# The clinic's signed-off copy in /etc/microcare/rules wins over the default.
sed -i 's/"installed-/"signed-/' /etc/microcare/rules/microneedling.json
evaluate "signed-1\.0\.0"
echo "package-test: with /etc/microcare/rules/ present, evaluate used the clinic's signed-off copy"
# First start, as the unit runs it: as microcare, the secrets in the environment, UMask=0077.
start_serve() {  # log file
    (
        set -a; . /etc/microcare/microcare.env; set +a
        cd / && umask 0077
        exec setpriv --reuid=microcare --regid=microcare --init-groups \
            /usr/bin/microcare serve --config /etc/microcare/microcare.json
    ) >"$1" 2>&1 &
    serve_pid=$!
    for _ in $(seq 100); do  # up to 10 s for "listening"; it is usually there in well under one
        grep -q "MicroCare is listening" "$1" && break
        kill -0 "$serve_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "MicroCare is listening" "$1" || { cat "$1" >&2; fail "serve did not start"; }
}
probe() {  # path (healthz, readyz): answers 200 over TLS
    /usr/bin/python3 - "$port" "$1" /etc/microcare/tls/server.pem >"$logs/$1.txt" 2>&1 <<'PY' ||
import http.client, ssl, sys
port, path, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
connection = http.client.HTTPSConnection("localhost", port, timeout=5,
                                         context=ssl.create_default_context(cafile=ca))
connection.request("GET", "/" + path)
answer = connection.getresponse()
print(answer.status, answer.read().decode())
sys.exit(0 if answer.status == 200 else 1)
PY
        { cat "$logs/$1.txt" "$logs/serve.log" >&2; fail "/$1 did not answer 200"; }
}
stop_serve() { kill -TERM "$serve_pid"; wait "$serve_pid" || true; serve_pid=""; }
start_serve "$logs/serve.log"
for path in healthz readyz; do probe "$path"; done

# OPERATIONS.md, "Backups and restarts": a backup through the binary while the service runs, as
# microcare with the secrets loaded; recorded in the live trail by the service.
backups="$(mktemp -d /tmp/microcare-backups.XXXXXX)" && chmod 0711 "$backups"
install -d -o microcare -g microcare -m 0700 "$backups/store"
backup="$backups/store/microcare-$(date -u +%Y%m%dT%H%M%SZ)"
(
    set -a; . /etc/microcare/microcare.env; set +a
    cd / && runuser -u microcare -- microcare backup --config /etc/microcare/microcare.json "$backup"
) >"$logs/backup.txt" 2>&1 || { cat "$logs/backup.txt" >&2; fail "backup failed"; }
[ -f "$backup/manifest.json" ] || fail "the backup has no manifest"
for _ in $(seq 100); do  # the service writes the record within seconds
    grep -q '"event":"backup"' /var/lib/microcare/audit.log && break
    sleep 0.1
done
grep -q '"event":"backup"' /var/lib/microcare/audit.log || fail "the backup is not in the live audit trail"
stop_serve
check_mode /var/lib/microcare/microcare.db microcare:microcare 600
echo "package-test: serve (as microcare) started, /healthz and /readyz answered 200 over TLS," \
    "stopped on SIGTERM; its store is microcare 0600 in /var/lib/microcare;" \
    "backup while it ran: $(head -n 1 "$logs/backup.txt")"
# Restore, the service stopped, as root: the files keep the service's owner, the trail verifies,
# what was there is moved aside, and the service starts on the restored data; a restore while it
# runs is refused.
(
    set -a; . /etc/microcare/microcare.env; set +a
    cd / && microcare restore --config /etc/microcare/microcare.json "$backup" &&
    runuser -u microcare -- microcare audit verify --config /etc/microcare/microcare.json
) >"$logs/restore.txt" 2>&1 || { cat "$logs/restore.txt" >&2; fail "restore, or the restored trail's verify, failed"; }
check_mode /var/lib/microcare/microcare.db microcare:microcare 600
check_mode /var/lib/microcare/audit.log microcare:microcare 640
ls -d /var/lib/microcare/microcare-pre-restore-* >/dev/null || fail "restore kept nothing aside"
start_serve "$logs/serve-restored.log"
probe readyz
for _ in $(seq 50); do  # restore, as root, left its record to the service, written at its start
    grep -q '"event":"restore"' /var/lib/microcare/audit.log && break
    sleep 0.1
done
grep -q '"event":"restore"' /var/lib/microcare/audit.log || fail "the restore is not in the restored trail"
(
    set -a; . /etc/microcare/microcare.env; set +a
    cd / && microcare restore --config /etc/microcare/microcare.json "$backup"
) >"$logs/restore-running.txt" 2>&1 && fail "restore ran while the service was running"
grep -q "the service is running" "$logs/restore-running.txt" || { cat "$logs/restore-running.txt" >&2; fail "restore while running: not refused as such"; }
stop_serve
rm -rf "$backups"
echo "package-test: restore (root, service stopped): files microcare's, trail verifies, old files" \
    "moved aside, the service starts on them; refused while the service runs"

# 5. Remove: the program goes, the configuration, data directory and user stay.
dpkg --remove microcare >"$logs/remove.log" 2>&1 || { cat "$logs/remove.log" >&2; fail "remove failed"; }
[ ! -e /usr/bin/microcare ] || fail "remove left /usr/bin/microcare"
[ -f /etc/microcare/microcare.json ] && [ -f /etc/microcare/microcare.env ] ||
    fail "remove deleted the configuration"
getent passwd microcare >/dev/null && [ -d /var/lib/microcare ] || fail "remove deleted the user or data"
echo "package-test: removed; configuration, data directory and user kept"

# 6. Purge, with a store and an audit trail in /var/lib/microcare: the package's files and the
# configuration go; the clinic's records, the user owning them, and the files the admin added to
# /etc/microcare stay (postrm says so).
dpkg --purge microcare >"$logs/purge.log" 2>&1 || { cat "$logs/purge.log" >&2; fail "purge failed"; }
for path in /usr/share/microcare /usr/share/doc/microcare /usr/lib/systemd/system/microcare.service \
    /etc/microcare/microcare.json /etc/microcare/microcare.env; do
    [ ! -e "$path" ] || fail "purge left $path"
done
[ -f /var/lib/microcare/microcare.db ] && getent passwd microcare >/dev/null ||
    fail "purge deleted the store or its owner"
[ -f /etc/microcare/audit.key ] || fail "purge deleted the admin's audit key"
grep -q "kept /var/lib/microcare" "$logs/purge.log" || fail "purge did not say it kept the records"
echo "package-test: purged with records present: package files and configuration gone;" \
    "store, audit key and the microcare user kept"

# 7. Once the records are no longer needed (removed by hand, as OPERATIONS.md says), an install
# and purge leave nothing: no file, directory, user or group.
rm -rf /etc/microcare /var/lib/microcare
userdel microcare
getent group microcare >/dev/null && groupdel microcare
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" \
    >"$logs/install-again.log" 2>&1 || { tail -n 20 "$logs/install-again.log" >&2; fail "second install failed"; }
dpkg --purge microcare >"$logs/purge-again.log" 2>&1 || { cat "$logs/purge-again.log" >&2; fail "purge failed"; }
for path in /etc/microcare /usr/share/microcare /usr/share/doc/microcare /var/lib/microcare \
    /usr/bin/microcare /usr/lib/systemd/system/microcare.service; do
    [ ! -e "$path" ] || fail "purge left $path"
done
! getent passwd microcare >/dev/null || fail "purge left the microcare user"
! getent group microcare >/dev/null || fail "purge left the microcare group"
echo "package-test: installed again and purged without records: no file, directory, user or group left"
