#!/usr/bin/env bash
# A Python virtual environment for a test suite, made the same way by every script that needs
# one (scripts/openai-sdk-test.sh, formaops-py/scripts/test.sh, scripts/reliability.sh).
#
#   source scripts/lib/venv.sh
#   venv_ensure DIR     makes DIR a working venv with pip, unless it already is one (made
#                       in DIR: a copied or moved venv is recreated, see venv_at_home)
#
# The interpreter is $PYTHON, else python3. A directory left half-made by an earlier run (no
# interpreter, or one whose pip does not import) is recreated with --clear. pip is put in with
# the interpreter's own ensurepip, run as a visible step so that its error, if any, is printed
# (`python -m venv` hides it behind "returned non-zero exit status 1"); when ensurepip fails,
# the base interpreter's pip installs pip into the venv instead (pip >= 22.3, `--python`), and
# the free disk space is printed, since a full disk is the usual reason.

# Whether the venv DIR is where it was made. A copied or moved venv (a hard-linked copy of
# another checkout's target/, say) still names its first place in bin/activate and in its
# scripts' #! lines, so activating it and running pip or maturin would install into that
# other venv. Unknown (no VIRTUAL_ENV line found) counts as at home.
venv_at_home() {
  local dir="$1" home
  home="$(sed -n 's/^VIRTUAL_ENV="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$dir/bin/activate" 2>/dev/null | head -n1)"
  [[ -z "$home" ]] && return 0
  [[ "$(cd "$home" 2>/dev/null && pwd -P)" == "$(cd "$dir" && pwd -P)" ]]
}

venv_ensure() {
  local dir="$1"
  local py="${PYTHON:-python3}"
  if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c 'import pip' 2>/dev/null; then
    if venv_at_home "$dir"; then
      return 0
    fi
    echo "== $dir was copied or moved from another place (see its bin/activate): recreating it"
  fi
  echo "== creating the virtual environment $dir ($("$py" --version 2>&1))"
  "$py" -m venv --clear --without-pip "$dir"
  if "$dir/bin/python" -m ensurepip --upgrade --default-pip >"$dir/ensurepip.log" 2>&1; then
    return 0
  fi
  echo "!!! ensurepip failed in $dir; its output:" >&2
  sed 's/^/    /' "$dir/ensurepip.log" >&2
  df -h "$dir" /tmp >&2 || true
  echo "== installing pip into $dir with the base interpreter's pip instead" >&2
  "$py" -m pip --python "$dir/bin/python" install --quiet --disable-pip-version-check pip
  "$dir/bin/python" -c 'import pip'
}
