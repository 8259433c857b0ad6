#!/usr/bin/env bash
# install-test-deps.sh -- installs the real Graphite programs the differential tests compare against.
#
#   * Python whisper 1.1.10 (PyPI) in a venv at $CARBIDE_ORACLES/venv: the whisper oracle.
#   * mmh3 5.3.1 (PyPI) in a venv at $CARBIDE_ORACLES/carbon-venv that also sees Debian's carbon:
#     the oracle for carbon's mmh3_ch rings (Debian does not package mmh3).
#   * Debian: graphite-carbon, graphite-web, python3-whisper, carbon-c-relay, gunicorn (carbon's
#     rings, carbon-cache, carbon-relay, carbon-aggregator, graphite-web under /usr/bin/python3), and
#     python3-protobuf (carbon-cache's protobuf receiver, carbon.carbon_pb2).
#   * npm: statsd@0.9.0 into $CARBIDE_ORACLES/statsd.
#
# Idempotent: a second run takes about a second. `apt-get update` runs only when a package is missing.
# Debian's postinst would start carbon-cache and carbon-c-relay on 0.0.0.0; a temporary policy-rc.d keeps
# them from starting, and they are disabled afterwards, so the tests own every port they use.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ORACLES=${CARBIDE_ORACLES:-$here/target/oracles}
WHISPER_VERSION=1.1.10
MMH3_VERSION=5.3.1
STATSD_VERSION=0.9.0
# gcc and make build jemalloc (tikv-jemalloc-sys), carbide's allocator.
APT_PKGS=(graphite-carbon graphite-web python3-whisper python3-protobuf carbon-c-relay gunicorn python3-venv iproute2 gcc make)

say() { echo "install-test-deps: $*"; }
die() { echo "install-test-deps: ERROR: $*" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi

# ---- Debian packages ----
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
command -v dpkg-query >/dev/null || die "not a Debian system: install ${APT_PKGS[*]} by hand"
missing=()
for p in "${APT_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# carbide install-test-deps: no package services during install\nexit 101\n' \
      | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    trap '"${SUDO[@]}" rm -f '"$policy" EXIT
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    >/dev/null || die "apt-get install failed: ${missing[*]}"
fi
for s in carbon-cache carbon-c-relay; do
  if [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now "$s.service" >/dev/null 2>&1 || true
  elif [ -s "/run/$s.pid" ] && kill -0 "$(cat "/run/$s.pid")" 2>/dev/null; then
    "${SUDO[@]}" "/etc/init.d/$s" stop >/dev/null 2>&1 || true
  fi
done
/usr/bin/python3 -c 'import carbon, graphite, whisper, carbon.carbon_pb2' 2>/dev/null \
  || die "/usr/bin/python3 cannot import carbon/graphite/whisper/carbon.carbon_pb2 after the install"

# ---- whisper 1.1.10 from PyPI, in a venv of its own ----
mkdir -p "$ORACLES"
venv=$ORACLES/venv
if ! "$venv/bin/python" -c "import whisper, sys; sys.exit(0 if whisper.__file__ else 1)" 2>/dev/null \
   || ! "$venv/bin/pip" show whisper 2>/dev/null | grep -qx "Version: $WHISPER_VERSION"; then
  say "python venv with whisper==$WHISPER_VERSION at $venv"
  python3 -m venv "$venv" || /usr/bin/python3 -m venv "$venv" || die "cannot create a venv at $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "whisper==$WHISPER_VERSION" \
    || die "pip install whisper==$WHISPER_VERSION failed"
fi

# ---- mmh3 from PyPI, in a venv over /usr/bin/python3's packages (so carbon imports too) ----
cvenv=$ORACLES/carbon-venv
mmh3_check='import carbon.hashing, mmh3, importlib.metadata as m; print(m.version("mmh3"))'
if [ "$("$cvenv/bin/python" -c "$mmh3_check" 2>/dev/null)" != "$MMH3_VERSION" ]; then
  say "python venv with mmh3==$MMH3_VERSION and Debian's carbon at $cvenv"
  /usr/bin/python3 -m venv --system-site-packages "$cvenv" || die "cannot create a venv at $cvenv"
  "$cvenv/bin/pip" install -q --disable-pip-version-check "mmh3==$MMH3_VERSION" \
    || die "pip install mmh3==$MMH3_VERSION failed"
  "$cvenv/bin/python" -c "import carbon.hashing, mmh3" || die "$cvenv cannot import carbon and mmh3"
fi

# ---- etsy statsd from npm ----
sd=$ORACLES/statsd
if [ "$(node -p 'require(process.argv[1]).version' "$sd/node_modules/statsd/package.json" 2>/dev/null)" != "$STATSD_VERSION" ]; then
  say "npm install statsd@$STATSD_VERSION into $sd"
  mkdir -p "$sd"
  [ -f "$sd/package.json" ] || echo '{"name":"carbide-oracle-statsd","private":true}' > "$sd/package.json"
  (cd "$sd" && npm install --save-exact --omit=optional --ignore-scripts --no-audit --no-fund \
     --loglevel=error "statsd@$STATSD_VERSION") >/dev/null || die "npm install statsd@$STATSD_VERSION failed"
fi
say "ready: whisper $WHISPER_VERSION ($venv), mmh3 $MMH3_VERSION ($cvenv), carbon $(dpkg-query -W -f='${Version}' graphite-carbon), graphite-web $(dpkg-query -W -f='${Version}' graphite-web), carbon-c-relay $(dpkg-query -W -f='${Version}' carbon-c-relay), statsd $STATSD_VERSION"
