"""Module path of ``solace.messaging.config.missing_resources_creation_configuration``."""

from warren.messaging._persistent import MissingResourcesCreationStrategy

__all__ = ["MissingResourcesCreationStrategy"]
