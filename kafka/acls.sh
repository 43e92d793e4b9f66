#!/usr/bin/env bash
# ACL examples for arbtui's role principals (least privilege), to run once the cluster
# has SASL listeners and the StandardAuthorizer enabled (see server.properties).
#
#   feed     writes quotes and book status
#   detect   reads quotes + status (consumer group arbtui-detect) + wallets, writes
#            opportunities
#   execute  reads opportunities (+ quotes/status for books at arrival), writes fills and
#            wallets (the free balances detectors size from)
#   view     reads every topic; it assigns partitions itself, so it needs no group;
#            writes operator commands on the control topic
#   every role that applies commands (feed, detect, execute, alerts) reads the control topic
#            and writes its acknowledgements there
#
# Every role also needs DESCRIBE on its topics: arbtui checks the topics exist at
# startup (Metadata) and the viewer looks up offsets by time (ListOffsets). No role
# needs CREATE when create-topics.sh ran first; without it arbtui stops at startup
# with one line naming the missing permission ("needs CREATE on Topic:...").
#
#   KAFKA_BIN=/opt/kafka/bin BOOTSTRAP=host:9092 ADMIN_CONFIG=admin.properties kafka/acls.sh
# admin.properties holds the admin's SASL settings (security.protocol, sasl.mechanism,
# sasl.jaas.config). Principals are created with SCRAM credentials, e.g.:
#   kafka-configs.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties \
#     --alter --entity-type users --entity-name detect \
#     --add-config 'SCRAM-SHA-512=[password=...]'
# and arbtui points at them with
#   security_protocol = "SASL_SSL"; sasl_mechanism = "SCRAM-SHA-512"
#   sasl_username = "detect"; sasl_password = "env:ARBTUI_KAFKA_PASSWORD"
set -euo pipefail

PREFIX="${PREFIX:-arbtui}"
GROUP="${GROUP:-arbtui-detect}"
: "${KAFKA_BIN:?set KAFKA_BIN to the Kafka bin directory (e.g. /opt/kafka/bin)}"
: "${BOOTSTRAP:?set BOOTSTRAP, e.g. localhost:9092}"
: "${ADMIN_CONFIG:?set ADMIN_CONFIG to the admin client properties file}"

acl() { "$KAFKA_BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" \
          --command-config "$ADMIN_CONFIG" --add "$@"; }

# feed
acl --allow-principal User:feed --operation Write --operation Describe \
    --topic "$PREFIX.quotes" --topic "$PREFIX.status"

# detect (any number of processes share the group)
acl --allow-principal User:detect --operation Read --operation Describe \
    --topic "$PREFIX.quotes" --topic "$PREFIX.status" --topic "$PREFIX.wallets"
acl --allow-principal User:detect --operation Read --group "$GROUP"
acl --allow-principal User:detect --operation Write --operation Describe \
    --topic "$PREFIX.opportunities"

# execute
acl --allow-principal User:execute --operation Read --operation Describe \
    --topic "$PREFIX.opportunities" --topic "$PREFIX.quotes" --topic "$PREFIX.status"
acl --allow-principal User:execute --operation Write --operation Describe \
    --topic "$PREFIX.fills" --topic "$PREFIX.wallets"

# view: read-only on everything arbtui publishes (prefixed: future topics included)
acl --allow-principal User:view --operation Read --operation Describe \
    --resource-pattern-type prefixed --topic "$PREFIX."

# control: the viewer sends commands, every applying role reads them and acknowledges
for who in view feed detect execute alerts; do
  acl --allow-principal "User:$who" --operation Read --operation Write --operation Describe \
      --topic "$PREFIX.control"
done

"$KAFKA_BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" \
    --list --resource-pattern-type any --topic "$PREFIX." 2>/dev/null || true
