#!/usr/bin/env bash
# Create arbtui's topics on the cluster: partitions, replication 3,
# min.insync.replicas=2, and retention per topic (quotes are only worth minutes).
#
#   kafka/create-topics.sh                   # uses the compose cluster (docker compose exec)
#   KAFKA_BIN=/opt/kafka/bin BOOTSTRAP=host:9092 kafka/create-topics.sh   # local install
#
# Idempotent (--if-not-exists). Partitions bound the number of detector processes that
# can share the work: 12 allows 1, 2, 3, 4, 6 or 12 detectors with an even split.
# The partition follows the base asset (the record key), so more
# partitions than base assets leave some partitions empty.
set -euo pipefail

PREFIX="${PREFIX:-arbtui}"
PARTITIONS="${PARTITIONS:-12}"
REPLICATION="${REPLICATION:-3}"
MIN_ISR="${MIN_ISR:-2}"
HERE="$(cd "$(dirname "$0")" && pwd)"

if [[ -n "${KAFKA_BIN:-}" ]]; then
  BOOTSTRAP="${BOOTSTRAP:-localhost:9092}"
  topics() { "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"; }
else
  # Inside the compose network the brokers reach each other on INTERNAL :19092.
  BOOTSTRAP="${BOOTSTRAP:-kafka-1:19092}"
  topics() {
    docker compose -f "$HERE/docker-compose.yml" exec -T kafka-1 \
      /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" "$@"
  }
fi

create() {  # name, then topic configs
  local name="$1"; shift
  local args=()
  for c in "$@"; do args+=(--config "$c"); done
  topics --create --if-not-exists --topic "$name" --partitions "$PARTITIONS" \
    --replication-factor "$REPLICATION" --config "min.insync.replicas=$MIN_ISR" "${args[@]}"
  echo "ok: $name"
}

# Quotes: 1 h is plenty for --since replays; 10 min segments so deletion keeps up.
create "$PREFIX.quotes" retention.ms=3600000 segment.ms=600000
# Book state changes: small, needed as long as quotes are.
create "$PREFIX.status" retention.ms=3600000 segment.ms=600000
# The executor's free balances (detectors size from the latest): tiny, restated every 5 s.
create "$PREFIX.wallets" retention.ms=3600000 segment.ms=600000
# Operator commands from a viewer and the roles' acknowledgements: tiny, an audit trail.
create "$PREFIX.control" retention.ms=604800000
# Opportunities and fills: the record of what happened; the journal is the durable copy.
create "$PREFIX.opportunities" retention.ms=604800000
create "$PREFIX.fills" retention.ms=2592000000

topics --describe --topic "$PREFIX.quotes" | head -n 3
