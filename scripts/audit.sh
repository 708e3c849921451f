#!/usr/bin/env bash
# Known vulnerabilities in every Python package the lock files pin (pip-audit, OSV/PyPI advisories).
# Needs the network, so CI runs it; `make test` does not.
set -euo pipefail

usage() {
  cat <<USAGE
usage: scripts/audit.sh [--dry-run]

Exports uv.lock (every group) and tools/checkov/uv.lock to pinned, hashed requirements and
runs pip-audit on each without resolving anything again. Exits non-zero on any known
vulnerability. --dry-run collects the packages but asks no advisory service.
USAGE
}

dry_run=()
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=(--dry-run) ;;
  -h|--help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never
# The uv that `make install` pins, else one on PATH.
uv=${UV:-$([ -x .tools/bin/uv ] && echo .tools/bin/uv || echo uv)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
for project in . tools/checkov; do
  out="$work/$(echo "$project" | tr './' '__')-requirements.txt"
  "$uv" export --frozen --project "$project" --all-groups --no-emit-workspace --no-emit-project \
    --format requirements-txt --output-file "$out" >/dev/null
  echo "== pip-audit: $project/uv.lock ($(grep -c '^[a-z0-9]' "$out") packages)"
  "$uv" run --frozen --project . --group checks pip-audit --requirement "$out" --require-hashes \
    --disable-pip --strict --progress-spinner off --desc on "${dry_run[@]}" || status=1
done
exit "$status"
