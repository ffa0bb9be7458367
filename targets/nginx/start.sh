#!/usr/bin/env bash
# Starts nginx on 127.0.0.1:8080 inside the evaluation's network namespace.
set -euo pipefail
mkdir -p tmp www
# The page: 5.5 KiB of text by default; NGINX_PAGE_KIB makes it that many KiB of random bytes
# (nginx-large.yaml), where copying the body, not handling the request, is the work.
if [[ -n "${NGINX_PAGE_KIB:-}" ]]; then
  head -c "$((NGINX_PAGE_KIB * 1024))" /dev/urandom > www/index.html
else
  head -c 4096 /dev/urandom | base64 > www/index.html
fi
chmod -R a+rX .
exec nginx -p "$PWD/" -c "$PWD/nginx.conf" -e "$PWD/error.log"
