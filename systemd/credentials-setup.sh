#!/bin/sh
# Create the credential files mailsync.service loads with LoadCredential=.
# Run as root. Each secret is read from the terminal, never from the command
# line (which would land in the shell history and the process list).
set -eu
DIR=/etc/mailsync/credentials
install -d -m 0700 -o root -g root "$DIR"
for name in imap-password sf-password sf-token; do
    printf '%s (empty to skip): ' "$name"
    stty -echo 2>/dev/null || true
    read -r value
    stty echo 2>/dev/null || true
    echo
    if [ -n "$value" ]; then
        umask 077
        printf '%s' "$value" > "$DIR/$name"
        chmod 0600 "$DIR/$name"
    fi
done
# The unit lists all three; an empty file keeps a skipped one loadable.
for name in imap-password sf-password sf-token; do
    [ -e "$DIR/$name" ] || install -m 0600 /dev/null "$DIR/$name"
done
echo "credentials in $DIR; reference them in the config as e.g. password_file = \"imap-password\""
