#!/usr/bin/env bash
# The second security scanner beside cdk-nag: checkov's CloudFormation checks on the
# synthesized sample environment. Every finding fails the scan unless the template skips
# it with a reason (Metadata.checkov.skip, written by the constructs).
#
# checkov pins its own boto3, packaging and networkx, which clash with the project's, so
# it lives in a virtual environment of its own (.venv-checkov), created once.
set -euo pipefail
cd "$(dirname "$0")/.."

checkov_version=3.3.30
venv=.venv-checkov
if [ ! -x "$venv/bin/checkov" ] || ! grep -qx "$checkov_version" "$venv/.version" 2>/dev/null; then
  echo "scan: installing checkov $checkov_version into $venv (once)"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "checkov==$checkov_version" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$checkov_version" > "$venv/.version"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if ! cdk synth --quiet --output "$out" >"$out/synth.log" 2>&1; then
  cat "$out/synth.log" >&2
  exit 1
fi
template="$out/BatchwrightSample.template.json"
echo "scan: checkov on the synthesized sample ($template)"
# --skip-download: no network but the package registries; the checks ship with checkov.
"$venv/bin/checkov" --file "$template" --framework cloudformation --skip-download \
  --compact --quiet
