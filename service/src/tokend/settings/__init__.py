"""Settings of `tokend serve`: one model (``model.Settings``), its flags (``flags``), its docs table
(``table``) and the CPU count that is the default number of workers (``cpus``).

    settings = Settings.load(flags={"port": 6000})      # flags > TOKEND_* variables > defaults
"""

from tokend.settings.flags import add_setting_flags, setting_flags
from tokend.settings.model import ENV_PREFIX, SETTING_NAMES, Settings, SettingsError, env_name, flag_name
from tokend.settings.table import settings_table

__all__ = [
    "ENV_PREFIX",
    "SETTING_NAMES",
    "Settings",
    "SettingsError",
    "add_setting_flags",
    "env_name",
    "flag_name",
    "setting_flags",
    "settings_table",
]
