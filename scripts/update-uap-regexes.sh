#!/usr/bin/env bash
# Refreshes assets/uap/regexes.json, the User-Agent rules of the segments
# (crates/core/src/segmenter.rs), from the npm package uap-core (Apache-2.0,
# https://github.com/ua-parser/uap-core): its regexes.yaml, the browser
# (`user_agent_parsers`) and operating-system (`os_parsers`) rules,
# unchanged, converted to JSON (js-yaml, fetched alongside) with the version.
# Then runs the segments' tests. Review the diff and commit it.
#
# Usage: scripts/update-uap-regexes.sh [VERSION]    (default: latest)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-latest}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uap-core@$version" >/dev/null && tar xzf uap-core-*.tgz \
  && mkdir yaml && cd yaml && npm pack --silent js-yaml@4 >/dev/null && tar xzf js-yaml-*.tgz)
node -e '
  const dir = process.argv[1];
  const yaml = require(dir + "/yaml/package");
  const fs = require("fs");
  const meta = require(dir + "/package/package.json");
  const rules = yaml.load(fs.readFileSync(dir + "/package/regexes.yaml", "utf8"));
  const vendored = {
    package: meta.name,
    version: meta.version,
    license: meta.license || "Apache-2.0",
    homepage: meta.homepage,
    user_agent_parsers: rules.user_agent_parsers,
    os_parsers: rules.os_parsers,
  };
  process.stdout.write(JSON.stringify(vendored, null, 1) + "\n");
' "$work" >assets/uap/regexes.json.new
mv assets/uap/regexes.json.new assets/uap/regexes.json
echo "update-uap-regexes: $(grep -m1 '"version"' assets/uap/regexes.json | tr -d ' ,')" >&2
cargo test -p lamed-core --lib segmenter
