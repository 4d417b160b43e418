#!/usr/bin/env bash
# Property-based checks of the HTTP servers against their OpenAPI specs with schemathesis (PyPI,
# pinned below): `voco ingestd` against Schemas/ingest-api.json over a scratch store, and
# `voco serve` against Schemas/query-api.json over a scratch store that `voco ingest` fills with
# a few Samples/ images. Each server runs on a free port with a token; schemathesis generates
# requests for every operation (valid and invalid) and checks every answer against the spec
# (status documented, content type, schema, headers); then the server is stopped.
#   Tools/schemathesis.sh [--max-examples N] [ingest|query|all]    (default 30 per operation, all)
# Tools/test runs it with --max-examples 10 after `swift test` (it needs PyPI for the venv once).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
examples=30
which=all
while [ $# -gt 0 ]; do
  case "$1" in
    --max-examples) examples="$2"; shift 2 ;;
    ingest|query|all) which="$1"; shift ;;
    *) echo "usage: Tools/schemathesis.sh [--max-examples N] [ingest|query|all]" >&2; exit 64 ;;
  esac
done

venv="$root/.venv-schemathesis"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q schemathesis==4.32.5 >&2
fi
"$root/Tools/deps.sh"
swift build --quiet --package-path "$root" --product voco >&2
voco="$root/.build/debug/voco"

work="$(mktemp -d)"
server=""
stop_server() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=""
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT
umask 077
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"

# Waits for $1's port file; prints the port.
wait_port() {
  for _ in $(seq 600); do [ -s "$1" ] && break; sleep 0.1; done
  [ -s "$1" ] || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
  tr -d '\n' < "$1"
}

run_schemathesis() {  # spec port config
  "$venv/bin/schemathesis" --config-file "$3" run "$1" --url "http://127.0.0.1:$2" \
    --header "Authorization: Bearer $(cat "$work/token")" --checks all --max-examples "$examples" --seed 1
}

if [ "$which" != query ]; then
  "$voco" ingestd --store "$work/ingest-store" --uploads "$work/uploads" --listen 127.0.0.1:0 --port-file "$work/ingest-port" \
    --token-file "$work/token" --queue-limit 1000 --max-body-bytes 1048576 --log-format text --log-level warning \
    2> "$work/server.log" &
  server=$!
  port="$(wait_port "$work/ingest-port")"
  # The upload's body must be a JPEG or PNG by content, which no JSON Schema can say: other bytes of
  # a "valid" string get 415 not-an-image, allowed here for that operation only.
  cat > "$work/ingest.toml" <<'TOML'
[[operations]]
include-name = "POST /v1/collections/{collection}/images"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "415", "503"]
TOML
  run_schemathesis "$root/Schemas/ingest-api.json" "$port" "$work/ingest.toml"
  stop_server
fi

if [ "$which" != ingest ]; then
  mkdir -p "$work/images"
  cp "$root"/Samples/0000[0-3].* "$work/images/"
  "$voco" ingest --store "$work/query-store" --collection samples "$work/images" > "$work/ingest.log" 2>&1 \
    || { cat "$work/ingest.log" >&2; exit 1; }
  "$voco" serve --store "$work/query-store" --listen 127.0.0.1:0 --port-file "$work/query-port" --token-file "$work/token" \
    --max-waiting 64 --max-body-bytes 65536 --log-format text --log-level warning 2> "$work/server.log" &
  server=$!
  port="$(wait_port "$work/query-port")"
  # A valid question names collections and images that a generated request cannot know: 404
  # (unknown), 409 (no record for this model) and 422 (does not fit the context) are answers to
  # valid requests too, and 503 when the line is full.
  cat > "$work/query.toml" <<'TOML'
[[operations]]
include-name = "POST /v1/ask"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "503"]
[[operations]]
include-name = "POST /v1/ask/stream"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "503"]
[[operations]]
include-name = "GET /v1/collections/{collection}/members"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404"]
[[operations]]
include-name = "GET /v1/images/{digest}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404"]
TOML
  run_schemathesis "$root/Schemas/query-api.json" "$port" "$work/query.toml"
  stop_server
fi
