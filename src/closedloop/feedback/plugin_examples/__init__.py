"""Plugins shipped with closedloop, always available (an account admin still enables them).

Each module here follows the plugin contract in ``docs/plugins.md``; they are loaded by
file path like the plugins of ``DATAOPS_PLUGIN_DIRECTORY``, never imported by name.
"""
