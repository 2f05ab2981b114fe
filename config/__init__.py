"""Configuration: the shipped default TOML, the demo catalog, and their validated loader.

>>> s = load_settings()
>>> s.kafka.input_topic, s.scoring.formula_multiplier_schedule_2
('orders.signed', 3.0)
"""

from config.settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings

__all__ = ["Settings", "ConfigError", "load_settings", "DEFAULT_CONFIG"]
