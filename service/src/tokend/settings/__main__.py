"""``python -m tokend.settings``: print the settings table of DEVELOPERS.md (generated from the model)."""

from tokend.settings.table import settings_table

print(settings_table(), end="")
