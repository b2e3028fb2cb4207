#!/bin/sh
# Installs what the setup service rendered (/shared/conf/*.conf, /shared/sounds/<lang>/...)
# into Asterisk's own directories, then runs Asterisk in the foreground as its own user.
set -eu
[ -f /shared/conf/ari.conf ] || { echo "no rendered configuration in /shared/conf" >&2; exit 1; }
install -o root -g asterisk -m 0640 /shared/conf/*.conf /etc/asterisk/
for dir in /shared/sounds/*/ivr-engine; do
    lang=$(basename "$(dirname "$dir")")
    mkdir -p "/usr/share/asterisk/sounds/$lang"
    rm -rf "/usr/share/asterisk/sounds/$lang/ivr-engine"
    cp -r "$dir" "/usr/share/asterisk/sounds/$lang/ivr-engine"
done
exec asterisk -f -U asterisk -G asterisk
