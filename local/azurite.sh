#!/usr/bin/env bash
# Start Azurite, the Azure Storage emulator, for `func start` (Azure Functions Core Tools):
# blob on 127.0.0.1:10000, queue on :10001, table on :10002, which is what
# `AzureWebJobsStorage=UseDevelopmentStorage=true` points at. The Durable task hub (DTBaseHub)
# keeps its queues, tables and leases there.
#
# Only needed with Core Tools; `dtbase-local` runs without any storage emulator.
# First run installs the pinned Azurite with npm into .dtbase-local/ (git-ignored); data stays
# in .dtbase-local/azurite. Extra arguments go to Azurite (e.g. --inMemoryPersistence).
set -euo pipefail

# 3.36+ needs Node >= 21/22; 3.35.0 is the newest that runs on Node 20 (NOTES.md §4).
AZURITE_VERSION=3.35.0

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/.dtbase-local/tools/azurite-$AZURITE_VERSION"
data="$repo/.dtbase-local/azurite"
azurite="$tools/node_modules/.bin/azurite"

if [[ ! -x "$azurite" ]]; then
  if ! command -v npm >/dev/null; then
    echo "azurite.sh: npm not found; install Node.js 20 (or newer) first" >&2
    exit 1
  fi
  echo "Installing azurite@$AZURITE_VERSION into $tools (about a minute, once)..."
  mkdir -p "$tools"
  npm install --prefix "$tools" --save-exact --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION"
fi

mkdir -p "$data"
echo "Azurite $AZURITE_VERSION: blob :10000, queue :10001, table :10002 on 127.0.0.1; data in $data"
# --disableTelemetry: otherwise Azurite reports to Application Insights.
exec "$azurite" --silent --disableTelemetry --skipApiVersionCheck \
  --location "$data" \
  --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
  "$@"
