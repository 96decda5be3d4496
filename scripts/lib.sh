# Shared by scripts/run and scripts/test.

# ensure_debian_packages command:package … — apt-get install the packages whose command is
# missing (apt-get update first; sudo when not root).
ensure_debian_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >&2
}

# ensure_venv [extra] — .venv with Craton and its client (client/, the cratonclient
# distribution) installed editable at the pinned versions, plus Craton's named extra (e.g.
# "test"). With the test extra it also keeps .venv/wheelhouse: wheels of everything the client
# needs, from which tests/client/test_install.py installs the client into a fresh virtualenv
# without the network (rebuilt only when constraints.txt or client/pyproject.toml change).
ensure_venv() {
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "Craton needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local target="."
  [ $# -gt 0 ] && target=".[$1]"
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt \
      -e "$target" -e ./client >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "pip install failed (log above, also in .venv/pip.log)" >&2
    exit 1
  fi
  [ "${1:-}" = test ] && ensure_client_wheelhouse
  return 0
}

ensure_client_wheelhouse() {
  local stamp
  stamp="$(cat constraints.txt client/pyproject.toml | sha256sum | cut -c1-16)"
  [ "$(cat .venv/wheelhouse/.stamp 2>/dev/null)" = "$stamp" ] && return 0
  rm -rf .venv/wheelhouse
  if ! .venv/bin/python -m pip wheel -q --disable-pip-version-check -c constraints.txt \
      --wheel-dir .venv/wheelhouse ./client >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "pip wheel failed (log above, also in .venv/pip.log)" >&2
    exit 1
  fi
  echo "$stamp" >.venv/wheelhouse/.stamp
}

# ensure_openstack_venv — .venv-openstack: the real Keystone and Barbican servers that
# tests/keystone/ starts (pip's keystone and barbican, served by gunicorn), at the versions
# constraints-openstack.txt pins. A virtualenv of its own: the servers pin oslo.db, eventlet,
# pecan and dozens more that Craton neither needs nor should have beside it.
ensure_openstack_venv() {
  local python="${PYTHON:-python3}"
  [ -x .venv-openstack/bin/python ] || "$python" -m venv .venv-openstack
  if ! .venv-openstack/bin/python -m pip install -q --disable-pip-version-check \
      -c constraints-openstack.txt keystone barbican gunicorn \
      >.venv-openstack/pip.log 2>&1; then
    cat .venv-openstack/pip.log >&2
    echo "pip install of Keystone and Barbican failed (log above, also in" \
         ".venv-openstack/pip.log)" >&2
    exit 1
  fi
}
