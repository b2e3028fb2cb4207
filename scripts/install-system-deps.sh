#!/usr/bin/env bash
# Installs the Debian packages ivr-engine needs on the host, only those that are missing.
# Never adds any apt source: Asterisk itself comes from Debian sid, but only inside the
# sandbox chroot (see `ivr-engine sandbox build`), never on the host.
set -euo pipefail

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v sipp        >/dev/null 2>&1 || need+=(sip-tester)
command -v espeak-ng   >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox         >/dev/null 2>&1 || need+=(sox)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The panel's browser tests drive Debian's chromium (Playwright never downloads a browser).
[ -x /usr/bin/chromium ]     || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# The reverse-proxy browser test runs the panel through a real nginx (started by the test on
# a free loopback port, never as a system service); the unit test checks deploy/'s systemd
# unit with systemd-analyze.
[ -x /usr/sbin/nginx ]        || need+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} — install them as root (apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages like nginx start their service when installed: nothing here asked for a system
# nginx on port 80, so deny service starts for the time of the install (Debian's
# policy-rc.d convention), unless the machine already has such a policy.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
