#!/usr/bin/env bash
# Builds Portcullis and the harness in release mode, then runs every server and scenario.
# Options after the script name go to the harness; see `tools/bench/run.sh --help`.
# PostgreSQL runs need PORTCULLIS_TEST_POSTGRES_URL. oidc-provider comes from the peers set-up
# beside the repository, installed into PEERS_DIR; the script installs it when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

export PEERS_DIR="${PEERS_DIR:-/tmp/anchors/peers}"
if [ ! -d "$PEERS_DIR/node/node_modules/oidc-provider" ]; then
    PEERS_DIR="$PEERS_DIR" ../shared/peers/setup.sh
fi
cargo build --release --bin portcullis
cargo build --release -p portcullis-bench
exec target/release/portcullis-bench "$@"
