#!/usr/bin/env bash
# Installs docxy as a systemd service, upgrades it, or removes it.
#
#   install.sh [--binary PATH | --version VER] [--prefix DIR] [--root DIR] [--no-start]
#   install.sh --uninstall [--purge] [--prefix DIR] [--root DIR]
#
# Run it again to upgrade: the binary and the unit are replaced, the config is kept.
# See `install.sh --help` for the details.
set -euo pipefail
umask 022

PROG=${0##*/}
# Where `--version` downloads from: <base>/v<VER>/docxy-linux-<arch>, checked against the
# release's <base>/v<VER>/SHA256SUMS (written by `npm run release`). The repository can be given
# with --repo or DOCXY_RELEASE_REPO, the whole base (a mirror, or file:// in tests) with
# DOCXY_RELEASE_BASE_URL. The unit and config templates come from next to this script, or, when
# it runs on its own (curl ... | bash), from the same tag of the repository (DOCXY_RAW_BASE_URL).
RELEASE_REPO=${DOCXY_RELEASE_REPO:-OWNER/docxy}

usage() {
  cat <<EOF
Usage: $PROG [options]

Installs the docxy binary, a systemd unit and (first time only) a config file:
  <prefix>/bin/docxy                   the binary (replaced atomically)
  /etc/systemd/system/docxy.service    the unit (replaced; local changes go in 'systemctl edit docxy')
  /etc/docxy/docxy.toml                the config (written only when missing: never overwritten)
  /var/lib/docxy                       state and cache, owned by the system user 'docxy'
then creates the user, runs 'systemctl daemon-reload' and 'systemctl enable --now docxy'
(or restarts docxy when it was already running).

Options:
  --binary PATH     install this docxy binary (default: dist/docxy next to this script, if built)
  --version VER     download release VER from GitHub instead (docxy-linux-x64 or -arm64);
                    it is installed only if its SHA-256 matches the release's SHA256SUMS
  --repo OWNER/NAME GitHub repository of the releases (default: \$DOCXY_RELEASE_REPO or $RELEASE_REPO)
  --sha256 HEX      check the binary's SHA-256 before installing it
  --prefix DIR      install the binary as DIR/bin/docxy (default /usr/local)
  --root DIR        install below DIR instead of / (staging, packaging, tests); the user is not
                    created and systemctl is not run, only printed as "would run: ..."
  --no-start        do not enable, start or restart the service
  --uninstall       stop and disable the service, remove the binary and the unit;
                    the config and the cache stay
  --purge           with --uninstall: also remove /etc/docxy and /var/lib/docxy
  -h, --help        show this help

Without a running systemd (no /run/systemd/system) the user and the systemctl steps are
printed instead of run, as with --root.
EOF
}

say() { printf '%s\n' "$*"; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
quoted() {
  local out="" arg
  for arg in "$@"; do out+="$(printf '%q' "$arg") "; done
  printf '%s' "${out% }"
}
# A command that changes the system outside the installed files: run it, or say what would run.
run() {
  if [ "$ACT" = 1 ]; then
    say "running: $(quoted "$@")"
    "$@"
  else
    say "would run: $(quoted "$@")"
  fi
}

# ---------------------------------------------------------------------------------------------
# Arguments

prefix=/usr/local
binary=""
version=""
sha256=""
root=""
start=1
uninstall=0
purge=0
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) need_value "$@"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    --version) need_value "$@"; version=$2; shift 2 ;;
    --version=*) version=${1#*=}; shift ;;
    --repo) need_value "$@"; RELEASE_REPO=$2; shift 2 ;;
    --repo=*) RELEASE_REPO=${1#*=}; shift ;;
    --sha256) need_value "$@"; sha256=$2; shift 2 ;;
    --sha256=*) sha256=${1#*=}; shift ;;
    --root) need_value "$@"; root=$2; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --no-start) start=0; shift ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) printf '%s: unknown option: %s\n\n' "$PROG" "$1" >&2; usage >&2; exit 2 ;;
  esac
done

[ -z "$binary" ] || [ -z "$version" ] || die "--binary and --version exclude each other"
[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge only goes with --uninstall"
version=${version#v}
[ -z "$version" ] || [[ $version =~ ^[0-9A-Za-z][0-9A-Za-z.+-]*$ ]] || die "--version: not a version: $version"
# The prefix ends up in the unit's ExecStart (and in a sed replacement): keep it to plain path characters.
[[ $prefix =~ ^/[A-Za-z0-9._+/-]*$ ]] || die "--prefix must be an absolute path of letters, digits and ._+-/ (got: $prefix)"
prefix=${prefix%/}
while [[ $prefix == *// ]]; do prefix=${prefix%/}; done
[ -z "$sha256" ] || [[ $sha256 =~ ^[0-9a-fA-F]{64}$ ]] || die "--sha256: expected 64 hex digits"

if [ -n "$root" ]; then
  if [ "$uninstall" = 1 ]; then
    [ -d "$root" ] || die "--root: no such directory: $root"
  else
    mkdir -p -- "$root"
  fi
  root=$(cd -- "$root" && pwd -P)
  [ "$root" != / ] || root=""
fi
if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  die "installing into / needs root: run it with sudo (or stage it with --root DIR)"
fi

# ACT=1: create the user and run systemctl; otherwise only print those steps.
if [ -z "$root" ] && [ -d /run/systemd/system ]; then ACT=1; else ACT=0; fi

# Paths as the running system sees them, and where this run writes them.
SYS_BIN="$prefix/bin/docxy"
BIN="$root$SYS_BIN"
CONF_DIR="$root/etc/docxy"
CONF="$CONF_DIR/docxy.toml"
UNIT_DIR="$root/etc/systemd/system"
UNIT="$UNIT_DIR/docxy.service"
STATE_DIR="$root/var/lib/docxy"

script_dir=""
if [ -n "${BASH_SOURCE[0]:-}" ] && [ -f "${BASH_SOURCE[0]}" ]; then
  script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/docxy-install.XXXXXX")
staged=""
cleanup() {
  [ -z "$staged" ] || rm -f -- "$staged"
  rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -z "$root" ] || say "installing below $root (staged: no user is created and systemctl is not run)"
[ -n "$root" ] || [ "$ACT" = 1 ] || say "systemd is not running here: the user and systemctl steps are only printed"

# ---------------------------------------------------------------------------------------------
# Uninstall

if [ "$uninstall" = 1 ]; then
  if [ "$ACT" = 1 ]; then
    if systemctl cat docxy.service >/dev/null 2>&1; then run systemctl disable --now docxy.service || true; fi
  else
    run systemctl disable --now docxy.service
  fi
  for file in "$BIN" "$UNIT"; do
    if [ -e "$file" ] || [ -L "$file" ]; then
      rm -f -- "$file"
      say "removed $file"
    else
      say "not present: $file"
    fi
  done
  run systemctl daemon-reload
  if [ "$purge" = 1 ]; then
    for dir in "$CONF_DIR" "$STATE_DIR"; do
      if [ -e "$dir" ]; then
        rm -rf -- "$dir"
        say "removed $dir"
      fi
    done
    say "the system user 'docxy' is kept; remove it with: userdel docxy"
  else
    say "kept the config $CONF_DIR and the cache $STATE_DIR (--purge removes them)"
  fi
  say "docxy is uninstalled"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Fetching

fetch() { # URL FILE
  command -v curl >/dev/null 2>&1 || die "curl is needed to download $1"
  say "downloading $1"
  curl -fsSL --retry 3 --proto-redir =https -o "$2" -- "$1" || die "download failed: $1"
}

release_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo x64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "no docxy release for this machine ($(uname -m)); build one with: bun scripts/build.ts" ;;
  esac
}

check_repo() {
  [[ $RELEASE_REPO =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "--repo: expected OWNER/NAME (got: $RELEASE_REPO)"
  [ "$RELEASE_REPO" != OWNER/docxy ] || die "which GitHub repository publishes the releases? Give --repo OWNER/NAME (or set DOCXY_RELEASE_REPO)"
}

# The binary to install: --binary, a download of --version, or dist/docxy of this checkout.
if [ -n "$version" ]; then
  base=${DOCXY_RELEASE_BASE_URL:-}
  if [ -z "$base" ]; then
    check_repo
    base="https://github.com/$RELEASE_REPO/releases/download"
  fi
  asset="docxy-linux-$(release_arch)"
  source_bin="$work/docxy"
  fetch "${base%/}/v$version/$asset" "$source_bin"
  # A download is installed only if it is what the release published.
  fetch "${base%/}/v$version/SHA256SUMS" "$work/SHA256SUMS"
  published=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1; exit }' "$work/SHA256SUMS")
  [[ $published =~ ^[0-9a-f]{64}$ ]] || die "the SHA256SUMS of v$version lists no $asset"
elif [ -n "$binary" ]; then
  source_bin=$binary
elif [ -n "$script_dir" ] && [ -f "$script_dir/../dist/docxy" ]; then
  source_bin="$script_dir/../dist/docxy"
else
  die "no binary given: use --binary PATH (e.g. dist/docxy after 'bun scripts/build.ts') or --version VER"
fi
[ -f "$source_bin" ] && [ -r "$source_bin" ] || die "not a readable file: $source_bin"
check_sha256() { # EXPECTED WHERE-IT-CAME-FROM
  command -v sha256sum >/dev/null 2>&1 || die "sha256sum is needed to check the binary"
  local got
  got=$(sha256sum <"$source_bin" | cut -d' ' -f1)
  [ "$got" = "$(printf '%s' "$1" | tr 'A-F' 'a-f')" ] || die "SHA-256 mismatch for $source_bin: got $got, $2 says $1; nothing was changed"
  say "SHA-256 ok ($2)"
}
[ -z "$version" ] || check_sha256 "$published" "SHA256SUMS of v$version"
[ -z "$sha256" ] || check_sha256 "$sha256" "--sha256"

# The unit and config templates.
template() { # NAME → path of the template
  if [ -n "$script_dir" ] && [ -f "$script_dir/$1" ]; then
    printf '%s\n' "$script_dir/$1"
    return
  fi
  [ -n "$version" ] || die "$1 not found next to $PROG: run the installer from a docxy checkout or release"
  local raw=${DOCXY_RAW_BASE_URL:-}
  if [ -z "$raw" ]; then
    check_repo
    raw="https://raw.githubusercontent.com/$RELEASE_REPO"
  fi
  fetch "${raw%/}/v$version/scripts/$1" "$work/$1" >&2
  printf '%s\n' "$work/$1"
}
unit_template=$(template docxy.service)
config_template=$(template docxy.example.toml)
grep -q '^ExecStart=/usr/local/bin/docxy ' "$unit_template" || die "$unit_template: no ExecStart=/usr/local/bin/docxy line"

# ---------------------------------------------------------------------------------------------
# Binary: copy next to the target under a temporary name, check that it runs from there, then
# rename it over the old one (atomic; a running docxy keeps its old inode until restarted).

# Runs `BIN --version` and prints its answer, e.g. "docxy 0.1.0".
binary_version() {
  local out
  out=$("$1" --version 2>&1) || return 1
  [[ $out =~ ^docxy\ [^[:space:]]+$ ]] || return 1
  printf '%s\n' "$out"
}

old_version=""
if [ -e "$BIN" ]; then old_version=$(binary_version "$BIN" || echo "an unknown version"); fi

check_release_version() {
  [ -z "$version" ] || [ "$1" = "docxy $version" ] || die "downloaded v$version but the binary says '$1'; nothing was changed"
}

# An earlier install with another --prefix leaves its binary behind: say so.
if [ -f "$UNIT" ]; then
  previous=$(sed -n 's|^ExecStart=\([^ ]*\).*|\1|p' "$UNIT" | head -n 1)
  if [ -n "$previous" ] && [ "$previous" != "$SYS_BIN" ] && [ -e "$root$previous" ]; then
    say "note: the unit ran $previous before; that binary stays (remove it with: rm $previous)"
  fi
fi

mkdir -p -- "${BIN%/*}"
if [ -e "$BIN" ] && cmp -s -- "$source_bin" "$BIN"; then
  new_version=$(binary_version "$BIN") || die "$BIN does not run ('$BIN --version' failed)"
  check_release_version "$new_version"
  say "binary unchanged: $BIN ($new_version)"
else
  staged="${BIN%/*}/.docxy.new.$$"
  cp -- "$source_bin" "$staged"
  chmod 0755 -- "$staged"
  if ! new_version=$(binary_version "$staged"); then
    die "the new binary does not run ('docxy --version' failed: wrong architecture, corrupt download, or a noexec mount?); nothing was changed"
  fi
  check_release_version "$new_version"
  mv -f -- "$staged" "$BIN"
  staged=""
  if [ -n "$old_version" ]; then say "upgraded $BIN: $old_version -> $new_version"; else say "installed $BIN ($new_version)"; fi
fi

# ---------------------------------------------------------------------------------------------
# User, state directory, config, unit

if [ "$ACT" = 1 ]; then
  if getent passwd docxy >/dev/null 2>&1; then
    say "system user docxy exists"
  else
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    [ -x "$nologin" ] || nologin=/bin/false
    run useradd --system --user-group --home-dir /var/lib/docxy --shell "$nologin" docxy
  fi
else
  run useradd --system --user-group --home-dir /var/lib/docxy --shell /usr/sbin/nologin docxy
fi

mkdir -p -- "$STATE_DIR"
chmod 0750 -- "$STATE_DIR"
run chown docxy:docxy "$STATE_DIR"

mkdir -p -- "$CONF_DIR"
if [ -e "$CONF" ]; then
  say "kept the existing config $CONF"
  config_new=0
else
  tmp="$CONF_DIR/.docxy.toml.new.$$"
  cp -- "$config_template" "$tmp"
  chmod 0640 -- "$tmp"
  mv -f -- "$tmp" "$CONF"
  say "wrote the config $CONF (from docxy.example.toml; edit it, then: systemctl reload docxy)"
  config_new=1
fi
# The config may hold secrets: root writes it, the docxy group reads it.
[ "$config_new" = 0 ] || run chown root:docxy "$CONF"

mkdir -p -- "$UNIT_DIR"
unit_text="$work/unit.substituted"
sed "s|/usr/local/bin/docxy|$SYS_BIN|g" "$unit_template" >"$unit_text"
if [ -e "$UNIT" ] && cmp -s -- "$unit_text" "$UNIT"; then
  say "unit unchanged: $UNIT"
else
  [ -e "$UNIT" ] && what="updated" || what="installed"
  tmp="$UNIT_DIR/.docxy.service.new.$$"
  cp -- "$unit_text" "$tmp"
  chmod 0644 -- "$tmp"
  mv -f -- "$tmp" "$UNIT"
  say "$what the unit $UNIT (ExecStart=$SYS_BIN -c /etc/docxy/docxy.toml)"
fi

# ---------------------------------------------------------------------------------------------
# systemd

run systemctl daemon-reload
status_hint="systemctl status docxy; journalctl -u docxy -f"
if [ "$start" = 0 ]; then
  say "not started (--no-start). Start it with: systemctl enable --now docxy"
  [ -z "$old_version" ] || say "a docxy that was already running keeps the old binary until: systemctl restart docxy"
elif [ "$ACT" = 1 ] && systemctl is-active --quiet docxy.service; then
  run systemctl restart docxy.service || die "docxy did not restart; see: $status_hint"
  run systemctl enable docxy.service
else
  run systemctl enable --now docxy.service || die "docxy did not start; see: $status_hint"
fi

# ---------------------------------------------------------------------------------------------
# What next

port=$(sed -n 's/^[[:space:]]*http_port[[:space:]]*=[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$CONF" | head -n 1)
port=${port:-5000}
host=$(hostname -f 2>/dev/null || hostname 2>/dev/null || echo docxy.example.com)
cat <<EOF

docxy is installed ($new_version).
  binary  $BIN
  unit    $UNIT
  config  $CONF
  cache   $STATE_DIR/cache
Check it:    $status_hint
             curl http://$host:$port/health
Configure:   edit /etc/docxy/docxy.toml (set server.public_base_url), then: systemctl reload docxy

Docker: put this in /etc/docker/daemon.json on each client, then run: systemctl restart docker
  { "registry-mirrors": ["http://$host:$port"] }
"docker info" lists it under "Registry Mirrors". Other clients (containerd, podman): README "Client setup".
EOF
