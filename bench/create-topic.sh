#!/usr/bin/env bash
# create-topic.sh BROKERS TOPIC PARTITIONS: creates a topic with infinite
# retention using the Kafka jars that scripts/kafka installed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/kafka" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$1" --create --if-not-exists \
  --topic "$2" --partitions "$3" --replication-factor 1 --config retention.ms=-1 >/dev/null
