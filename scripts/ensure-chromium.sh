#!/usr/bin/env bash
# `npm test`'s pretest: Debian's chromium for the usage page's browser test (test/usage-page.test.ts),
# installed once when it is missing, from Debian's packages (needs root, as on this project's machines).
set -euo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-chromium: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get): install Debian's chromium package" >&2
  exit 0 # the browser test then fails and says so
fi
echo "ensure-chromium: installing Debian's chromium for the browser test" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
