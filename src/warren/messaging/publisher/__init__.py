"""Publishers (module path of ``solace.messaging.publisher``)."""
