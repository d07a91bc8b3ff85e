#!/usr/bin/env bash
# Install edgecap on a Debian / Raspberry Pi OS device from this checkout (run as root).
# Idempotent: run it again after `git pull` to upgrade; it reports every item and changes
# only what differs. See docs/install.md, or run it with --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: sudo scripts/install.sh [OPTIONS]
       sudo scripts/install.sh --uninstall [--purge] [--root DIR]

Installs edgecap from the checkout this script lives in:
  apt packages   python3-venv python3-dev gcc pkg-config libasound2-dev libsystemd-dev alsa-utils
  /opt/edgecap/venv                      virtualenv with edgecap and its dependencies
  /opt/edgecap/share/                    example config and documentation, for reference
  /etc/edgecap/edgecap.toml              config, copied from the example only if absent
  /etc/edgecap/credentials/ (0700)       secrets, one file each (0600), passed to the service
                                         by systemd LoadCredential=
  /etc/systemd/system/edgecap.service    the unit (+ edgecap.service.d/credentials.conf when
                                         an API key or MQTT password is installed)
then, when systemd is running (and not with --root): daemon-reload, enable, and start the
service once a credential is present (restart it if something changed while it runs).

Options:
  --credential-file SRC    install SRC as the token-service credential ("-" = read stdin)
  --credential -           same as --credential-file -
  --api-key-file SRC       install SRC as the AssemblyAI API key (auth.mode = "api_key")
  --mqtt-password-file SRC install SRC as the MQTT password
  --no-apt                 do not install apt packages
  --python PATH            interpreter for the venv (default /usr/bin/python3)
  --system-site-packages   let the venv see the interpreter's packages (offline installs)
  --pip-arg ARG            extra argument for `pip install` (repeatable), e.g.
                           --pip-arg=--no-index --pip-arg=--find-links=/path/to/wheels
  --reinstall              reinstall the package even if the sources did not change
  --root DIR               install under DIR instead of / (staging and tests): no apt,
                           no systemctl; the venv's scripts then refer to DIR
  --uninstall              remove the unit, its credentials drop-in and /opt/edgecap;
                           keep config, credentials and state
  --purge                  with --uninstall: also remove /etc/edgecap, the state in
                           /var/lib/edgecap and all edgecap.service.d drop-ins
  -h, --help               show this help
EOF
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_PACKAGES=(python3-venv python3-dev gcc pkg-config libasound2-dev libsystemd-dev alsa-utils)

root=""
action=install
purge=0
do_apt=1
reinstall=0
python=""
venv_args=()
pip_args=()
declare -A cred_src=() # credential name -> source path or "-"

need_value() {
    [[ $# -ge 2 && -n $2 ]] || {
        echo "install.sh: $1 needs a value" >&2
        usage >&2
        exit 2
    }
}

while [[ $# -gt 0 ]]; do
    opt=$1
    value=""
    has_value=0
    if [[ $opt == --*=* ]]; then
        value=${opt#*=}
        opt=${opt%%=*}
        has_value=1
    fi
    case $opt in
    --root | --python | --pip-arg | --credential | --credential-file | --api-key-file | --mqtt-password-file)
        if [[ $has_value -eq 0 ]]; then
            need_value "$opt" "${2-}"
            value=$2
            shift
        fi
        case $opt in
        --root) root=$value ;;
        --python) python=$value ;;
        --pip-arg) pip_args+=("$value") ;;
        --credential)
            [[ $value == "-" ]] || die "--credential only accepts \"-\" (stdin); use --credential-file PATH"
            cred_src[token-service-credential]=$value
            ;;
        --credential-file) cred_src[token-service-credential]=$value ;;
        --api-key-file) cred_src[assemblyai-api-key]=$value ;;
        --mqtt-password-file) cred_src[mqtt-password]=$value ;;
        esac
        ;;
    --no-apt) do_apt=0 ;;
    --system-site-packages) venv_args+=(--system-site-packages) ;;
    --reinstall) reinstall=1 ;;
    --uninstall) action=uninstall ;;
    --purge) purge=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "install.sh: unknown option: $1" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
done

if [[ $purge -eq 1 && $action != uninstall ]]; then
    die "--purge only goes with --uninstall"
fi
stdin_users=0
for name in "${!cred_src[@]}"; do
    [[ ${cred_src[$name]} == "-" ]] && stdin_users=$((stdin_users + 1))
done
[[ $stdin_users -le 1 ]] || die "only one secret can be read from stdin per run"
if [[ $action == uninstall && ${#cred_src[@]} -gt 0 ]]; then
    die "--uninstall takes no credential options"
fi

if [[ -n $root ]]; then
    mkdir -p "$root"
    root="$(cd "$root" && pwd)"
    [[ $root != / ]] || root=""
fi
if [[ -z $root && $EUID -ne 0 ]]; then
    die "run as root (sudo $0 ...), or pass --root DIR to install elsewhere"
fi

# Target paths: what the device sees (unit, docs) and where this run writes ($root prefix).
OPT_DIR=/opt/edgecap
VENV=$OPT_DIR/venv
SHARE=$OPT_DIR/share
ETC_DIR=/etc/edgecap
CONFIG=$ETC_DIR/edgecap.toml
CRED_DIR=$ETC_DIR/credentials
UNIT=/etc/systemd/system/edgecap.service
DROPIN_DIR=/etc/systemd/system/edgecap.service.d
DROPIN=$DROPIN_DIR/credentials.conf
CRED_NAMES=(token-service-credential assemblyai-api-key mqtt-password)

systemd_running=0
if [[ -z $root && -d /run/systemd/system ]]; then
    systemd_running=1
fi

changes=0
item() { printf '  %-26s %s\n' "$1" "$2"; }
changed() { changes=$((changes + 1)); }

tmp_dir="$(mktemp -d)"
trap 'rm -rf "$tmp_dir"' EXIT

# put_file SRC DEST MODE: copy SRC to $root/DEST atomically unless identical; sets $status.
put_file() {
    local src=$1 dest=$root$2 mode=$3 tmp
    if [[ -f $dest && ! -L $dest ]] && cmp -s "$src" "$dest"; then
        if [[ $(stat -c %a "$dest") == "${mode#0}" ]]; then
            status=unchanged
        else
            chmod "$mode" "$dest"
            status="updated (mode $mode)"
            changed
        fi
        return
    fi
    if [[ -e $dest || -L $dest ]]; then status=updated; else status=installed; fi
    mkdir -p "$(dirname "$dest")"
    tmp="$(mktemp "$dest.XXXXXX")"
    cat "$src" >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$dest"
    changed
}

# ensure_dir DIR MODE: create $root/DIR or fix its mode; sets $status.
ensure_dir() {
    local dir=$root$1 mode=$2
    if [[ -d $dir ]]; then
        if [[ $(stat -c %a "$dir") == "${mode#0}" ]]; then
            status=unchanged
        else
            chmod "$mode" "$dir"
            status="updated (mode $mode)"
            changed
        fi
    else
        mkdir -p "$dir"
        chmod "$mode" "$dir"
        status=created
        changed
    fi
}

# remove_path PATH LABEL: remove $root/PATH (file, link or tree) and report.
remove_path() {
    local path=$root$1
    if [[ -e $path || -L $path ]]; then
        rm -rf "$path"
        item "$2" "removed $1"
        changed
    else
        item "$2" "not present"
    fi
}

# Read one secret (file or stdin), check it and write it to $tmp_dir/NAME, one line.
read_secret() {
    local name=$1 src=$2 value
    if [[ $src == "-" ]]; then
        if [[ -t 0 ]]; then
            read -r -s -p "Enter the $name (input hidden): " value || true
            echo
        else
            value="$(cat)"
        fi
    else
        [[ -f $src && -r $src ]] || die "$name: cannot read $src"
        value="$(<"$src")"
    fi
    value="${value#"${value%%[![:space:]]*}"}"
    value="${value%"${value##*[![:space:]]}"}"
    [[ -n $value ]] || die "$name: the secret is empty; nothing was written"
    [[ $value != *[$'\n\r']* ]] || die "$name: the secret must be a single line"
    (umask 077 && printf '%s\n' "$value" >"$tmp_dir/$name")
}

# Hash of everything pip builds the package from, to skip an unchanged reinstall.
source_files() {
    local f
    for f in pyproject.toml setup.cfg setup.py MANIFEST.in README.md README.rst LICENSE LICENSE.txt; do
        [[ -f $repo_root/$f ]] && echo "$f"
    done
    (cd "$repo_root" && find edgecap -type f ! -name '*.pyc' ! -path '*/__pycache__/*') | LC_ALL=C sort
}
source_fingerprint() {
    (cd "$repo_root" && source_files | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

venv_python_ok() {
    [[ -x $root$VENV/bin/python ]] && "$root$VENV/bin/python" -c 'import sys' 2>/dev/null
}

installed_version() {
    "$root$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("edgecap"))' 2>/dev/null
}

systemctl_quiet() { systemctl "$@" >/dev/null 2>&1; }

# --------------------------------------------------------------------------------------------
do_uninstall() {
    echo "edgecap uninstall (root: ${root:-/})"
    if [[ $systemd_running -eq 1 ]]; then
        if systemctl_quiet is-active edgecap || systemctl_quiet is-enabled edgecap; then
            systemctl disable --now edgecap >/dev/null 2>&1 || true
            item "service" "stopped and disabled"
            changed
        else
            item "service" "not enabled, not running"
        fi
    fi
    remove_path "$UNIT" "unit"
    if [[ $purge -eq 1 ]]; then
        remove_path "$DROPIN_DIR" "drop-ins"
    else
        remove_path "$DROPIN" "credentials drop-in"
        if [[ -d $root$DROPIN_DIR ]]; then
            rmdir "$root$DROPIN_DIR" 2>/dev/null ||
                item "other drop-ins" "kept in $DROPIN_DIR (yours; --purge removes them)"
        fi
    fi
    remove_path "$OPT_DIR" "venv and shared files"
    if [[ $systemd_running -eq 1 ]]; then
        systemctl daemon-reload
        systemctl reset-failed edgecap >/dev/null 2>&1 || true
    fi
    if [[ $purge -eq 1 ]]; then
        remove_path "$ETC_DIR" "config and credentials"
        remove_path /var/lib/private/edgecap "state"
        remove_path /var/lib/edgecap "state link"
    else
        item "config and credentials" "kept in $ETC_DIR (--purge removes them)"
        item "state" "kept in /var/lib/edgecap (--purge removes it)"
    fi
    item "apt packages" "kept (shared with other software)"
    if [[ $changes -eq 0 ]]; then
        echo "Nothing changed: edgecap was not installed."
    else
        echo "Done: $changes item(s) removed."
    fi
}

# --------------------------------------------------------------------------------------------
install_apt() {
    if [[ -n $root ]]; then
        item "apt packages" "skipped (--root)"
        return
    fi
    if [[ $do_apt -eq 0 ]]; then
        item "apt packages" "skipped (--no-apt)"
        return
    fi
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        item "apt packages" "unchanged (all present)"
        return
    fi
    item "apt packages" "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    item "apt packages" "installed ${#missing[@]}"
    changed
}

install_venv() {
    if [[ -z $python ]]; then
        if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; else python="$(command -v python3 || true)"; fi
    fi
    if [[ -z $python ]] || ! command -v "$python" >/dev/null; then
        die "no python3 found; install python3-venv or pass --python"
    fi
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$python is older than Python 3.11; edgecap needs Raspberry Pi OS / Debian 12 (bookworm) or newer"
    "$python" -c 'import ensurepip, venv' 2>/dev/null ||
        die "$python cannot create virtualenvs; install python3-venv (or drop --no-apt)"

    if venv_python_ok; then
        item "venv" "unchanged ($VENV)"
    else
        if [[ -e $root$VENV ]]; then
            rm -rf "${root:?}$VENV"
            status="recreated (the old one was broken)"
        else
            status=created
        fi
        mkdir -p "$root$OPT_DIR"
        "$python" -m venv "${venv_args[@]}" "$root$VENV"
        item "venv" "$status ($VENV, $("$root$VENV/bin/python" -V 2>&1))"
        changed
    fi

    local fingerprint stamp=$root$VENV/.edgecap-source-sha256 stage
    fingerprint="$(source_fingerprint)"
    if [[ $reinstall -eq 0 && -x $root$VENV/bin/edgecap && -f $stamp && $(<"$stamp") == "$fingerprint" ]]; then
        item "edgecap package" "unchanged ($(installed_version || echo '?'), same sources)"
        return
    fi
    # Build from a copy so that pip leaves no build/ or *.egg-info in the checkout.
    stage=$tmp_dir/src
    mkdir -p "$stage"
    source_files | tr '\n' '\0' | tar -C "$repo_root" --null --no-recursion -T - -cf - |
        tar -C "$stage" -xf -
    echo "  (pip install: on a Raspberry Pi, building pyalsaaudio and systemd-python can take minutes)"
    "$root$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
        ${pip_args[@]+"${pip_args[@]}"} "$stage" || die "pip install failed (see the messages above)"
    printf '%s\n' "$fingerprint" >"$stamp"
    item "edgecap package" "installed $(installed_version || echo '?') from $repo_root"
    changed
}

install_shared() {
    local src rel stale
    put_file "$repo_root/config/edgecap.toml" "$SHARE/edgecap.toml.example" 0644
    item "example config" "$status ($SHARE/edgecap.toml.example)"
    ensure_dir "$SHARE/doc" 0755
    local doc_status=unchanged doc_change=updated
    [[ $status != created ]] || doc_change=installed
    for src in "$repo_root"/docs/*.md; do
        [[ -f $src ]] || continue
        put_file "$src" "$SHARE/doc/$(basename "$src")" 0644
        [[ $status == unchanged ]] || doc_status=$doc_change
    done
    for stale in "$root$SHARE"/doc/*.md; do
        [[ -f $stale ]] || continue
        rel=$(basename "$stale")
        if [[ ! -f $repo_root/docs/$rel ]]; then
            rm -f "$stale"
            doc_status=updated
            changed
        fi
    done
    item "documentation" "$doc_status ($SHARE/doc)"
}

install_config() {
    ensure_dir "$ETC_DIR" 0755
    item "config directory" "$status ($ETC_DIR)"
    if [[ -e $root$CONFIG ]]; then
        if cmp -s "$repo_root/config/edgecap.toml" "$root$CONFIG"; then
            item "config" "kept ($CONFIG, identical to the example)"
        else
            item "config" "kept ($CONFIG, never overwritten; compare with $SHARE/edgecap.toml.example)"
        fi
    else
        put_file "$repo_root/config/edgecap.toml" "$CONFIG" 0644
        item "config" "$status ($CONFIG, from the example: edit it)"
    fi
}

install_credentials() {
    local name
    ensure_dir "$CRED_DIR" 0700
    item "credentials directory" "$status ($CRED_DIR)"
    for name in "${CRED_NAMES[@]}"; do
        if [[ -n ${cred_src[$name]-} ]]; then
            put_file "$tmp_dir/$name" "$CRED_DIR/$name" 0600
            item "$name" "$status ($CRED_DIR/$name)"
        elif [[ -f $root$CRED_DIR/$name ]]; then
            if [[ $(stat -c %a "$root$CRED_DIR/$name") != 600 ]]; then
                chmod 0600 "$root$CRED_DIR/$name"
                item "$name" "kept, mode fixed to 0600"
                changed
            else
                item "$name" "kept"
            fi
        elif [[ $name == token-service-credential ]]; then
            item "$name" "missing (see next steps)"
        fi
    done
}

# The unit loads only the token-service credential. When another secret file exists, a
# drop-in replaces that list with exactly the files present (LoadCredential= of a missing
# file would make the unit fail with 243/CREDENTIALS).
install_dropin() {
    local name present=()
    for name in "${CRED_NAMES[@]}"; do
        [[ -f $root$CRED_DIR/$name ]] && present+=("$name")
    done
    if [[ ${#present[@]} -eq 0 || (${#present[@]} -eq 1 && ${present[0]} == token-service-credential) ]]; then
        if [[ -e $root$DROPIN ]]; then
            rm -f "$root$DROPIN"
            rmdir "$root$DROPIN_DIR" 2>/dev/null || true
            item "credentials drop-in" "removed (the unit's own LoadCredential= is enough)"
            changed
        fi
        return
    fi
    {
        echo "# Written by edgecap's scripts/install.sh from the files in $CRED_DIR/."
        echo "# Re-run install.sh after adding or removing one; put your own changes in"
        echo "# another drop-in (systemctl edit edgecap), they would be lost here."
        echo "[Service]"
        echo "LoadCredential="
        for name in "${present[@]}"; do
            echo "LoadCredential=$name:$CRED_DIR/$name"
        done
    } >"$tmp_dir/credentials.conf"
    put_file "$tmp_dir/credentials.conf" "$DROPIN" 0644
    item "credentials drop-in" "$status ($DROPIN: ${present[*]})"
}

install_unit() {
    put_file "$repo_root/systemd/edgecap.service" "$UNIT" 0644
    item "unit" "$status ($UNIT)"
}

has_auth_secret() {
    [[ -f $root$CRED_DIR/token-service-credential || -f $root$CRED_DIR/assemblyai-api-key ]]
}

# Any change made by this run (code, unit, credentials) needs a restart of a running service.
manage_service() {
    local pending=$changes
    if [[ -n $root ]]; then
        item "service" "skipped (--root: no systemctl)"
        return
    fi
    if [[ $systemd_running -eq 0 ]]; then
        item "service" "skipped (systemd is not running here)"
        return
    fi
    if [[ $pending -gt 0 ]]; then
        systemctl daemon-reload
    fi
    if systemctl_quiet is-enabled edgecap; then
        item "service enabled" "unchanged"
    else
        systemctl enable edgecap >/dev/null 2>&1
        item "service enabled" "enabled (starts at boot)"
        changed
    fi
    if ! has_auth_secret; then
        item "service" "not started: no credential yet (see next steps)"
    elif systemctl_quiet is-active edgecap; then
        if [[ $pending -gt 0 ]]; then
            systemctl restart --no-block edgecap
            item "service" "restarting to apply the changes"
        else
            item "service" "running, left alone"
        fi
    else
        systemctl start --no-block edgecap
        item "service" "start requested (check: systemctl status edgecap)"
        changed
    fi
}

next_steps() {
    local n=1
    echo
    echo "Next steps:"
    if [[ -n $root ]]; then
        echo "  (installed under $root: the paths below are relative to it)"
    fi
    if grep -q 'keypool.example.com' "$root$CONFIG" 2>/dev/null; then
        echo "  $n. Edit $CONFIG: set auth.token_service_url (still the example value),"
    else
        echo "  $n. Review $CONFIG:"
    fi
    echo "     audio.device (list devices with: arecord -L) and mqtt.host / mqtt.port."
    n=$((n + 1))
    if ! has_auth_secret; then
        echo "  $n. Give edgecap its token-service credential (never put it in the config file):"
        echo "       sudo $repo_root/scripts/install.sh --credential -     # paste it, input hidden"
        echo "     or: sudo install -m 600 /dev/stdin $CRED_DIR/token-service-credential"
        echo "     (auth.mode = \"api_key\": use --api-key-file FILE instead)"
        n=$((n + 1))
    fi
    echo "  $n. Check the config with the installed credentials:"
    echo "       sudo CREDENTIALS_DIRECTORY=$CRED_DIR $VENV/bin/edgecap check-config --config $CONFIG"
    n=$((n + 1))
    echo "  $n. Apply and watch:  sudo systemctl restart edgecap && journalctl -u edgecap -f"
    n=$((n + 1))
    echo "  $n. See the transcripts:  mosquitto_sub -h BROKER -t 'edgecap/#' -v"
    echo "  Config edits later: sudo systemctl reload edgecap. Uninstall: sudo $repo_root/scripts/install.sh --uninstall"
}

do_install() {
    local name
    # Read and check the given secrets first: a bad one aborts before anything is changed.
    for name in "${!cred_src[@]}"; do
        read_secret "$name" "${cred_src[$name]}"
    done
    echo "edgecap install from $repo_root (root: ${root:-/})"
    install_apt
    install_venv
    install_shared
    install_config
    install_credentials
    install_unit
    install_dropin
    if [[ -z $root ]] && ! getent group audio >/dev/null; then
        echo "  warning: there is no 'audio' group here; the unit's SupplementaryGroups=audio will fail" >&2
    fi
    manage_service
    if [[ $changes -eq 0 ]]; then
        echo "Nothing changed: everything was already installed."
    else
        echo "Done: $changes item(s) changed."
    fi
    next_steps
}

if [[ $action == uninstall ]]; then
    do_uninstall
else
    do_install
fi
