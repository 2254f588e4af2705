#!/usr/bin/env bash
# Python-built test peers, in a virtualenv cached outside the repository under
# $TRUSTWATCH_CACHE (default ~/.cache/trustwatch), keyed by the versions in hack/versions.env,
# installed from PyPI.
#
#   hack/python-tools.sh build        # create the virtualenv when missing
#   hack/python-tools.sh tuf-python   # the python with python-tuf (builds it when missing)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${TRUSTWATCH_CACHE:-$HOME/.cache/trustwatch}"
venv="$cache/python-tuf-$PYTHON_TUF_VERSION-securesystemslib-$SECURESYSTEMSLIB_VERSION"

build() {
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import tuf, securesystemslib, cryptography' 2>/dev/null; then
    return
  fi
  echo "python-tools: installing python-tuf $PYTHON_TUF_VERSION into $venv" >&2
  rm -rf "$venv.tmp"
  python3 -m venv "$venv.tmp"
  "$venv.tmp/bin/pip" install --quiet --disable-pip-version-check \
    "tuf==$PYTHON_TUF_VERSION" "securesystemslib[crypto]==$SECURESYSTEMSLIB_VERSION" >&2
  rm -rf "$venv"
  mv "$venv.tmp" "$venv"
  # A venv records its own path: recreate the entry points' shebangs after the move.
  sed -i "s|$venv.tmp|$venv|g" "$venv/bin/"* 2>/dev/null || true
}

case "${1:-}" in
  build) build ;;
  tuf-python) build; echo "$venv/bin/python" ;;
  *) echo "usage: $0 build | tuf-python" >&2; exit 2 ;;
esac
