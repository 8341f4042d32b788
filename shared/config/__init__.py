"""Configuration read from the environment (app settings in Azure, local.settings.json locally)."""
