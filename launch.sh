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
  tensorboard  the runs' curves in a browser, offline: ./launch.sh tensorboard [--logdir=runs]
USAGE
  ensure_setup
  PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m cnnlab.cli --help | sed -n '4,$p'
}

die() { echo "launch.sh: error: $*" >&2; exit 2; }
say() { echo "setup: $*" >&2; }  # setup's own lines; pip's go to a log

install_data() {
  [ -d "$DATA_DIR" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Fashion-MNIST into $DATA_DIR (Debian package dataset-fashion-mnist) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "note: Fashion-MNIST is not in $DATA_DIR; install it with" \
         "'sudo apt-get install dataset-fashion-mnist', or pass --data_dir=DIR holding the IDX files" >&2
  fi
}

setup() {
  local start=$SECONDS log
  command -v python3 >/dev/null || die "python3 not found; install Python >= 3.10"
  if [ ! -x "$PY" ]; then
    say "creating $VENV (python3 -m venv)"
    python3 -m venv "$VENV" || die "could not create $VENV (Debian: apt-get install python3-venv)"
  fi
  log="$VENV/pip-install.log"
  # CNNLAB_PINS=FILE (CI's Colab row): those versions first, then held while the rest resolves,
  # as Colab's preinstalled packages are; remembered in the venv for later reinstalls
  local pins="${CNNLAB_PINS:-$(cat "$VENV/.cnnlab-pins" 2>/dev/null || true)}" held=()
  [ -n "$pins" ] && held=(-c "$pins") && echo "$pins" >"$VENV/.cnnlab-pins"
  say "installing cnnlab and its dependencies into $VENV (pip install -e .[dev]${pins:+ -c $pins}); pip's output: $log"
  if ! { "$PY" -m pip install --upgrade pip && { [ -z "$pins" ] || "$PY" -m pip install -r "$pins"; } \
         && "$PY" -m pip install -e "$ROOT[dev]" "${held[@]}"; } >"$log" 2>&1; then
    # pip's own error lines when it wrote any, else its last lines
    { grep -E '^(ERROR|error)\b' "$log" || tail -n 15 "$log"; } | tail -n 15 >&2
    die "pip install failed (pip's error is above; its whole output is in $log)"
  fi
  touch "$STAMP"
  install_data
  say "done in $((SECONDS - start)) s"
}

ensure_setup() {
  # (Re)install when the venv is missing or pyproject.toml changed since the last install.
  if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then setup; fi
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  help|-h|--help) usage ;;
  setup) setup ;;
  test)
    ensure_setup; cd "$ROOT"
    # One pytest worker per core (at most 4), a whole test file per worker (pytest-xdist).
    par=(-n auto --maxprocesses=4 --dist=loadfile)
    if [ "${1:-}" = --all ]; then shift; exec "$PY" -m pytest "${par[@]}" "$@"; fi
    exec "$PY" -m pytest "${par[@]}" -m "not slow" "$@" ;;
  tensorboard)  # TensorBoard (a dependency) on the runs' event files, default --logdir=runs
    ensure_setup
    case " $* " in *" --logdir"*) ;; *) set -- --logdir=runs "$@" ;; esac
    exec "$VENV/bin/tensorboard" "$@" ;;
  *)  # any other word is a command of cnnlab/cli/ (one file each); it says if there is none
    ensure_setup
    [ "$cmd" = train ] && install_data
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    exec "$PY" -m cnnlab.cli "$cmd" "$@" ;;
esac
