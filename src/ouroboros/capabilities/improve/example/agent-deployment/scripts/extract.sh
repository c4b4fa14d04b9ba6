#!/usr/bin/env bash
# Extract yesterday's sanitized telemetry into telemetry/events/.
set -euo pipefail
day="$(date -u -d yesterday +%F)"
mkdir -p telemetry/events
echo "extracting telemetry for ${day}"
