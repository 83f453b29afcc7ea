# Sourced by scripts/run and scripts/test: create .venv if needed, install the
# given requirements file when it changed since the last install, activate.
requirements="$1"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
stamp=".venv/.installed-$(basename "$requirements")"
if [[ ! -f "$stamp" ]] || [[ -n "$(find requirements*.txt -newer "$stamp" 2>/dev/null)" ]]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r "$requirements"
    touch "$stamp"
fi
# shellcheck disable=SC1091
source .venv/bin/activate
