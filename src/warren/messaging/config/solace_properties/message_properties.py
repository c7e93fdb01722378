"""Message property keys that map to message fields (``with_property``)."""

PRIORITY = "solace.messaging.message.priority"
SENDER_ID = "solace.messaging.message.sender-id"
HTTP_CONTENT_TYPE = "solace.messaging.message.http-content"
CORRELATION_ID = "solace.messaging.message.correlation-id"
PERSISTENT_TIME_TO_LIVE = "solace.messaging.message.persistent.time-to-live"
PERSISTENT_EXPIRATION = "solace.messaging.message.persistent.expiration"
APPLICATION_MESSAGE_ID = "solace.messaging.message.application-message-id"
