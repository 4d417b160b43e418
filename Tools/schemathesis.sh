#!/usr/bin/env bash
# Property-based checks of `voco ingestd` against Schemas/ingest-api.json with schemathesis
# (PyPI, pinned below): starts the daemon on a free port with a token and a scratch store, lets
# schemathesis generate requests for every operation (valid and invalid), checks every answer
# against the spec (status documented, content type, schema, headers), then stops the daemon.
#   Tools/schemathesis.sh [--max-examples N]        (default 30 per operation; about a minute)
# Not part of Tools/test (it needs PyPI); the Swift suite's OpenAPIConformanceTests runs there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
examples=30
if [ "${1:-}" = "--max-examples" ]; then examples="$2"; fi

venv="$root/.venv-schemathesis"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q schemathesis==4.32.5 >&2
fi
"$root/Tools/deps.sh"
swift build --quiet --package-path "$root" --product voco >&2
voco="$root/.build/debug/voco"

work="$(mktemp -d)"
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill -TERM "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
umask 077
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
"$voco" ingestd --store "$work/store" --uploads "$work/uploads" --listen 127.0.0.1:0 --port-file "$work/port" \
  --token-file "$work/token" --queue-limit 1000 --max-body-bytes 1048576 --log-format text --log-level warning \
  2> "$work/daemon.log" &
daemon=$!
for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "voco ingestd did not start:" >&2; cat "$work/daemon.log" >&2; exit 1; }
port="$(tr -d '\n' < "$work/port")"

# The upload's body must be a JPEG or PNG by content, which no JSON Schema can say: other bytes of
# a "valid" string get 415 not-an-image, allowed here for that operation only.
cat > "$work/schemathesis.toml" <<'TOML'
[[operations]]
include-name = "POST /v1/collections/{collection}/images"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "415", "503"]
TOML
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$root/Schemas/ingest-api.json" --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $(cat "$work/token")" --checks all --max-examples "$examples"
