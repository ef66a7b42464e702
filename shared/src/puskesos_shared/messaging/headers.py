"""Header names used on every message."""

MSG_ID = "Nats-Msg-Id"
EVENT_TYPE = "Puskesos-Event-Type"
SCHEMA_VERSION = "Puskesos-Schema-Version"
CORRELATION_ID = "Puskesos-Correlation-Id"
CAUSATION_ID = "Puskesos-Causation-Id"

DLQ_REASON = "Puskesos-Dlq-Reason"
DLQ_ORIGINAL_SUBJECT = "Puskesos-Dlq-Original-Subject"
DLQ_ORIGINAL_STREAM = "Puskesos-Dlq-Original-Stream"
DLQ_ORIGINAL_SEQUENCE = "Puskesos-Dlq-Original-Sequence"
DLQ_CONSUMER = "Puskesos-Dlq-Consumer"
DLQ_DELIVERIES = "Puskesos-Dlq-Deliveries"
DLQ_FAILED_AT = "Puskesos-Dlq-Failed-At"

#: Longest reason kept in a header; the rest is cut (headers are not for novels).
MAX_REASON_CHARS = 2000
