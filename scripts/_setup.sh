# Shared set-up for scripts/serve and scripts/test: a virtualenv in .venv with vrooms installed.
# Installs what a fresh Debian machine lacks (python3-venv, janus) when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# apt-get install with a message that says what to do when it fails (often: another apt
# holds the lock). Set -e does not stop at a failing command inside `a && b`.
apt_install() {
  echo "Installing $* from Debian ..." >&2
  if ! apt-get update -qq || ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
    echo "Could not install $* with apt-get (see above). If another apt or unattended-upgrades holds" >&2
    echo "the lock, wait for it to finish; then run 'apt-get install -y $*' or this script again." >&2
    exit 1
  fi
}

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# Janus is the media server for room calls; vrooms starts it itself.
command -v janus >/dev/null || need_apt+=(janus)
# Call Automation prompts: espeak-ng speaks TextSource/SsmlSource, ffmpeg converts every clip.
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
# Call recording: janus-pp-rec turns a participant's Janus recording (.mjr) into audio.
command -v janus-pp-rec >/dev/null || need_apt+=(janus-tools)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing ${need_apt[*]}: run 'sudo apt-get install -y ${need_apt[*]}' and try again." >&2
    exit 1
  fi
  apt_install "${need_apt[@]}"
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "vrooms needs Python 3.11 or newer; found $(python3 --version)." >&2
  exit 1
}

extras="${VROOMS_EXTRAS:-}"
stamp=".venv/.installed${extras:+-$extras}"
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..." >&2
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing vrooms${extras:+ with [$extras]} into .venv ..." >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
