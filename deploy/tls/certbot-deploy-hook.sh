#!/bin/sh
# certbot --deploy-hook for bareapi.service: copies the renewed certificate chain and key into
# /etc/bareapi/tls/ (the bareapi user cannot read /etc/letsencrypt/archive) and makes bareapi
# reload them with SIGHUP. Each file is written beside its target and renamed over it, so
# bareapi never reads half a file; the key is copied first, and bareapi checks that the pair
# matches before it swaps, keeping the old pair otherwise (and logging why).
set -eu
: "${RENEWED_LINEAGE:?run by certbot as --deploy-hook}"
dir=/etc/bareapi/tls
for name in privkey.pem fullchain.pem; do
  install -o bareapi -g bareapi -m 0600 "$RENEWED_LINEAGE/$name" "$dir/.$name.new"
  mv -f "$dir/.$name.new" "$dir/$name"
done
systemctl reload bareapi
