"""tasks_sync"""
