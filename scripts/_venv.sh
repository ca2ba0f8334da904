# Sourced by the other scripts: make .venv from the project's own files, once per change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${DOCSTORE_VENV:-.venv}"
pick_python() {
    for py in python3.13 python3.12 python3.11 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
           "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    echo "docstore needs Python 3.11 or newer" >&2; return 1
}
if [ ! -x "$VENV/bin/python" ]; then
    "$(pick_python)" -m venv "$VENV"
fi
# DOCSTORE_EXTRAS: the optional dependencies to install (default `test`; empty: the
# runtime dependencies only, what scripts/serve needs). A venv that has the test extras
# also has everything the runtime needs.
stamp="$VENV/.docstore-installed"
extras="${DOCSTORE_EXTRAS-test}"
hash="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
want="$hash-$extras"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$have" != "$want" ] && { [ -n "$extras" ] || [ "$have" != "$hash-test" ]; }; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
    echo "$want" > "$stamp"
fi
