#!/usr/bin/env bash
# Starts nginx on 127.0.0.1:8080 inside the evaluation's network namespace.
set -euo pipefail
mkdir -p tmp www
head -c 4096 /dev/urandom | base64 > www/index.html
chmod -R a+rX .
exec nginx -p "$PWD/" -c "$PWD/nginx.conf" -e "$PWD/error.log"
