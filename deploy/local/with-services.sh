#!/usr/bin/env bash
# Run a command with the local Kafka, Redis and schema registry up; stop them afterwards only if
# this script started them ("stop what you start"), whatever the command's fate.
#   with-services.sh COMMAND [ARGS...]
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
services=(bash "$here/services.sh")
started=no
if ! "${services[@]}" status >/dev/null 2>&1; then
    "${services[@]}" up || exit 1
    started=yes
fi
cleanup() { if [ "$started" = yes ]; then "${services[@]}" down; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM
# The registry services.sh started, unless one was named (or none: set but empty).
export TACTFUL_SCHEMA_REGISTRY_URL="${TACTFUL_SCHEMA_REGISTRY_URL-$(bash "$here/registry.sh" url)}"
"$@"
