#!/bin/sh
# Installs Criterion (the test framework) with the system package manager if
# its header is missing.
set -e
for d in /usr/include /usr/local/include; do
    [ -f "$d/criterion/criterion.h" ] && exit 0
done
echo "Criterion not found: installing libcriterion-dev" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -q && $SUDO apt-get install -y -q libcriterion-dev
elif command -v dnf >/dev/null 2>&1; then
    $SUDO dnf install -y criterion-devel
elif command -v brew >/dev/null 2>&1; then
    brew install criterion
else
    echo "error: cannot install Criterion: no apt-get, dnf or brew; install it by hand (https://github.com/Snaipe/Criterion)" >&2
    exit 1
fi
