"""The suite's Azurite launcher lives with the dev host (which starts it too)."""

from devhost.azurite import ACCOUNT, KEY, ROOT, Azurite, azurite_binary, start_azurite
from devhost.ports import free_port

__all__ = ["ACCOUNT", "KEY", "ROOT", "Azurite", "azurite_binary", "free_port", "start_azurite"]
