# Sourced by scripts/dev and scripts/test: make .venv with the project installed, once per
# change of pyproject.toml or constraints.txt. Needs only Python 3.11+ and network to PyPI.
set -euo pipefail

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "Pocket Portals needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  echo "Creating $VENV with $PY ..." >&2
  "$PY" -m venv "$VENV" || {
    echo "Could not create a virtualenv. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  }
fi
stamp="$VENV/.pocket-portals-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing Pocket Portals and its dependencies into $VENV (first run takes a minute) ..." >&2
  log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -c constraints.txt -e '.[test]'; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "Installing the dependencies failed; the whole log is in $log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
