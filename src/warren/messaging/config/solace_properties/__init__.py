"""Property keys, under the module path of ``solace.messaging.config.solace_properties``
so that applications importing them run unchanged. Keys are accepted with or
without their ``solace.messaging.`` prefix."""
