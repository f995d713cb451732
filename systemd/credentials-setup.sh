#!/bin/sh
# Create the credential files mailsync.service loads with LoadCredential=.
# Run as root. Each secret is read from the terminal, never from the command
# line (which would land in the shell history and the process list); a key
# (PEM) is copied from the file you name. Press Enter to skip one you do not
# use. The names below, the unit's LoadCredential= lines and the README's
# credentials table list the same files (tests/test_systemd_unit.py checks it).
set -eu
DIR=/etc/mailsync/credentials
# one-line secrets: IMAP password, Microsoft 365 client secret, Salesforce
# password, security token and connected-app consumer secret
SECRETS="imap-password ms365-secret sf-password sf-token sf-consumer-secret"
# PEM files: Microsoft 365 certificate private key, Salesforce JWT signing key
KEYFILES="ms365-certificate sf-jwt-key"
install -d -m 0700 -o root -g root "$DIR"
umask 077
for name in $SECRETS; do
    printf '%s (empty to skip): ' "$name"
    stty -echo 2>/dev/null || true
    read -r value
    stty echo 2>/dev/null || true
    echo
    if [ -n "$value" ]; then
        printf '%s' "$value" > "$DIR/$name"
        chmod 0600 "$DIR/$name"
    fi
done
for name in $KEYFILES; do
    printf '%s: path of the PEM file to copy (empty to skip): ' "$name"
    read -r source
    if [ -n "$source" ]; then
        install -m 0600 -o root -g root "$source" "$DIR/$name"
    fi
done
# The unit loads every name; an empty file keeps a skipped one loadable.
# mailsync refuses an empty file only when the config points at it.
for name in $SECRETS $KEYFILES; do
    [ -e "$DIR/$name" ] || install -m 0600 /dev/null "$DIR/$name"
done
echo "credentials in $DIR; reference them in the config by name, e.g. password_file = \"imap-password\""
