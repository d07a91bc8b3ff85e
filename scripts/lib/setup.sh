# Shared set-up for scripts/test and scripts/demo (sourced, not executed).
# Installs missing apt packages (as root, or via sudo) and keeps a virtualenv in .venv with
# the project installed (editable, with the extras in $EDGECAP_EXTRAS), reinstalling it
# whenever pyproject.toml changes. Expects: repo_root, step(), die().

ensure_setup() {
    apt_packages=(
        python3-venv python3-dev gcc pkg-config libasound2-dev alsa-utils libsystemd-dev
        mosquitto mosquitto-clients espeak-ng sox
    )

    step "system packages"
    missing=()
    for pkg in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing: ${missing[*]}"
        if [[ $(id -u) -eq 0 ]]; then
            as_root=()
        elif command -v sudo >/dev/null; then
            as_root=(sudo)
        else
            die "missing packages (${missing[*]}) and neither root nor sudo available"
        fi
        "${as_root[@]}" apt-get update -qq
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "all present"
    fi

    step "virtualenv (.venv)"
    command -v python3 >/dev/null || die "python3 not found"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "python3 >= 3.11 required, found $(python3 --version 2>&1)"
    venv="$repo_root/.venv"
    if [[ -x $venv/bin/python ]] && ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "recreating .venv (its python is too old or broken)"
        rm -rf "$venv"
    fi
    if [[ ! -x $venv/bin/python ]]; then
        python3 -m venv "$venv"
    fi
    stamp="$venv/.edgecap-installed"
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) ${EDGECAP_EXTRAS:-test,dev}"
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        echo "installing edgecap[${EDGECAP_EXTRAS:-test,dev}] (pyproject.toml changed or first run)"
        rm -f "$stamp"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[${EDGECAP_EXTRAS:-test,dev}]"
        echo "$want" >"$stamp"
    else
        echo "up to date"
    fi
}
