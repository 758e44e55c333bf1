#!/usr/bin/env bash
# cnnlab's one shell entry. `./launch.sh help` lists the commands.
# Every argument after the command is passed on as absl flags, e.g.
#   ./launch.sh train --config=experiments/textbook.py --workdir=runs/t1 --config.batch_size=128
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${CNNLAB_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.cnnlab-installed"
DATA_DIR=/usr/share/datasets/fashion-mnist

usage() {
  cat <<'USAGE'
usage: ./launch.sh COMMAND [--flag=value ...]

  setup     create .venv, install cnnlab (pip install -e .[dev]) and the Fashion-MNIST files
  test      the quick tests (~3 min):  ./launch.sh test [pytest args]
            every test (CI runs this): ./launch.sh test --all [pytest args]
USAGE
  ensure_setup >/dev/null
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m cnnlab.cli --help | sed -n '4,$p'
}

die() { echo "launch.sh: error: $*" >&2; exit 2; }

install_data() {
  [ -d "$DATA_DIR" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "note: Fashion-MNIST is not in $DATA_DIR; install it with" \
         "'sudo apt-get install dataset-fashion-mnist', or pass --data_dir=DIR holding the IDX files" >&2
  fi
}

setup() {
  command -v python3 >/dev/null || die "python3 not found; install Python >= 3.10"
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV" || die "could not create $VENV (Debian: apt-get install python3-venv)"
  fi
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -e "$ROOT[dev]"
  touch "$STAMP"
  install_data
}

ensure_setup() {
  # (Re)install when the venv is missing or pyproject.toml changed since the last install.
  if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then setup; fi
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  help|-h|--help) usage ;;
  setup) setup; echo "ready: $VENV" ;;
  test)
    ensure_setup; cd "$ROOT"
    if [ "${1:-}" = --all ]; then shift; exec "$PY" -m pytest "$@"; fi
    exec "$PY" -m pytest -m "not slow" "$@" ;;
  *)  # any other word is a command of cnnlab/cli/ (one file each); it says if there is none
    ensure_setup
    [ "$cmd" = train ] && install_data
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    exec "$PY" -m cnnlab.cli "$cmd" "$@" ;;
esac
