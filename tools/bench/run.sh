#!/usr/bin/env bash
# Builds Portcullis and the harness in release mode, then runs every server and scenario.
# Options after the script name go to the harness; see `tools/bench/run.sh --help`.
# PostgreSQL runs need PORTCULLIS_TEST_POSTGRES_URL. oidc-provider comes from the peers' launcher
# and setup script in PEERS_SOURCE (default ../shared/peers beside the repository), installed
# into PEERS_DIR; the script installs it when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

export PEERS_DIR="${PEERS_DIR:-/tmp/anchors/peers}"
export PEERS_SOURCE="${PEERS_SOURCE:-$PWD/../shared/peers}"
if [ ! -d "$PEERS_DIR/node/node_modules/oidc-provider" ]; then
    if [ -x "$PEERS_SOURCE/setup.sh" ]; then
        PEERS_DIR="$PEERS_DIR" "$PEERS_SOURCE/setup.sh"
    else
        echo "oidc-provider is not installed in $PEERS_DIR and $PEERS_SOURCE/setup.sh is missing;" \
            "set PEERS_SOURCE, or leave oidc-provider out with --servers" >&2
    fi
fi
cargo build --release --bin portcullis
cargo build --release -p portcullis-bench
exec target/release/portcullis-bench "$@"
