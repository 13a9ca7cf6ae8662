#!/usr/bin/env bash
# Make sure the services the test suite talks to are up: PostgreSQL on 127.0.0.1:5432.
set -uo pipefail
if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header | while read -r version cluster _port status _rest; do
        if [[ "$status" != online* ]]; then
            pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || echo "warning: could not start PostgreSQL $version/$cluster" >&2
        fi
    done
fi
exit 0
