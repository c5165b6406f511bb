#!/usr/bin/env bash
# Installs, from Debian's packages, what the test suite needs and the machine
# lacks. A no-op (no apt-get at all) when everything is present.
#
#   kcat                     compat tests (test/compat)
#   python3-confluent-kafka  compat tests; imports under Debian's /usr/bin/python3
#   postgresql               later tests
#   nodejs, npm              only when node or npm is missing
#   gcc                      go test -race needs cgo
#
# Runs as root on a fresh Debian machine (uses sudo when not root).
set -euo pipefail

have_pkg() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
if ! /usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1; then
	missing+=(python3-confluent-kafka)
fi
have_pkg postgresql || missing+=(postgresql)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-test-deps: all present"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps: missing ${missing[*]} and no apt-get here; install them by hand" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "install-test-deps: missing ${missing[*]}; run as root to install" >&2
		exit 1
	fi
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
echo "install-test-deps: done"
