#!/usr/bin/env bash
# Refreshes assets/bots/isbot-patterns.json, the crawler list of the bot
# filter (crates/core/src/bots.rs), from the npm package isbot (public domain,
# https://github.com/omrilotan/isbot): its exported `list`, unchanged.
# Then runs the bot filter's tests, which compile every pattern and check
# known crawlers and browsers. Review the diff and commit it.
#
# Usage: scripts/update-bot-patterns.sh [VERSION]    (default: latest)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-latest}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "isbot@$version" >/dev/null && tar xzf isbot-*.tgz)
node -e '
  const dir = process.argv[1];
  const meta = require(dir + "/package.json");
  const { list } = require(dir);
  const vendored = {
    package: meta.name,
    version: meta.version,
    license: meta.license,
    homepage: meta.homepage,
    patterns: list,
  };
  process.stdout.write(JSON.stringify(vendored, null, 2) + "\n");
' "$work/package" >assets/bots/isbot-patterns.json.new
mv assets/bots/isbot-patterns.json.new assets/bots/isbot-patterns.json
echo "update-bot-patterns: $(grep -m1 '"version"' assets/bots/isbot-patterns.json | tr -d ' ,')" >&2
cargo test -p lamed-core --lib bots
